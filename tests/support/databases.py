"""Throw-away databases on each real backend (SQLite, PostgreSQL, MariaDB), dropped afterwards.

The servers must run on this machine (./scripts/services.sh starts them); a test fails (never skips) when one
is unreachable, with the command that starts it. Every database gets a random name, so parallel test
processes, other people's runs and aborted runs never collide.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.support.paths import DEMO_SEED

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MARIADB_HOST, MARIADB_PORT, MARIADB_USER = "127.0.0.1", 3306, "root"

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
MARIADB_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"

BACKENDS = ("sqlite", "postgresql", "mariadb")


def database_name() -> str:
    """A unique, lower-case database name, so parallel or aborted runs never collide."""
    return f"prq_test_{secrets.token_hex(6)}"


def unreachable(server: str, address: str, start: str, exc: Exception) -> None:
    pytest.fail(
        f"{server} at {address} is unreachable: {type(exc).__name__}: {str(exc).strip()}\n"
        f"Start it with: {start}",
        pytrace=False,
    )


def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'integration.db'}")
    yield engine
    engine.dispose()


def _pg_admin():
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    return conn


def postgresql_engine(tmp_path: Path, template: str | None = None) -> Iterator[Engine]:
    """A new PostgreSQL database (as the superuser), empty or a copy of ``template``; a generator: wrap it in
    ``contextmanager`` outside pytest."""
    import psycopg2

    name = database_name()
    admin = _pg_admin
    try:
        with closing(admin()) as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    except psycopg2.OperationalError as exc:
        unreachable("PostgreSQL", f"{PG_HOST}:{PG_PORT}", PG_START, exc)
    # psycopg 3, the driver Airflow's PostgresHook gives the engine (provider 7 with psycopg installed)
    engine = create_engine(f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with closing(admin()) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def airflow_metadata_engine(tmp_path: Path) -> Iterator[Engine]:
    """A PostgreSQL database that already holds Airflow's metadata schema, for a cluster (set its ``migrated``):
    a copy of a template migrated once per Airflow version and kept on the server. The copy takes 0.3 s;
    ``airflow db migrate`` took 16 s per cluster on the loaded 2-core machine (2026-12-04, load 9)."""
    yield from postgresql_engine(tmp_path, template=_airflow_template())


def _airflow_template() -> str:
    import airflow
    import psycopg2

    name = "prq_template_airflow_" + "".join(c if c.isalnum() else "_" for c in airflow.__version__)
    try:
        conn = _pg_admin()
    except psycopg2.OperationalError as exc:
        unreachable("PostgreSQL", f"{PG_HOST}:{PG_PORT}", PG_START, exc)
    with closing(conn), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))  # parallel processes make it once
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            part = f"{name}_part"
            cur.execute(f'DROP DATABASE IF EXISTS "{part}" WITH (FORCE)')  # left by an aborted run
            cur.execute(f'CREATE DATABASE "{part}"')
            with tempfile.TemporaryDirectory() as home:
                env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{part}"}
                subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                               capture_output=True)
            cur.execute(f'ALTER DATABASE "{part}" RENAME TO "{name}"')
        cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))
    return name


def mariadb_engine(tmp_path: Path) -> Iterator[Engine]:
    import MySQLdb

    name = database_name()

    def admin():
        return MySQLdb.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, passwd="",
                               connect_timeout=5)

    try:
        with closing(admin()) as conn, closing(conn.cursor()) as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    except MySQLdb.OperationalError as exc:
        unreachable("MariaDB", f"{MARIADB_HOST}:{MARIADB_PORT}", MARIADB_START, exc)
    engine = create_engine(f"mysql+mysqldb://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with closing(admin()) as conn, closing(conn.cursor()) as cur:
            cur.execute("SET SESSION lock_wait_timeout = 10")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


ENGINE_FACTORIES: dict[str, Callable[[Path], Iterator[Engine]]] = {
    "sqlite": sqlite_engine,
    "postgresql": postgresql_engine,
    "mariadb": mariadb_engine,
}


CONN_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}


def airflow_uri(engine: Engine) -> str:
    """The Airflow connection URI that reaches the engine's database (the providers' own schemes)."""
    url = engine.url
    scheme = CONN_SCHEMES[engine.dialect.name]
    if scheme == "sqlite":
        return f"sqlite:///{url.database}"
    return f"{scheme}://{url.username}@{url.host}:{url.port}/{url.database}"


def load_seed(engine: Engine) -> None:
    """The demo shop's seed (it runs on every backend as written), statement by statement."""
    statements = [s.strip() for s in DEMO_SEED.read_text().split(";")]
    with engine.begin() as conn:
        for statement in statements:
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                conn.execute(text(body))


def rows(engine: Engine, table: str) -> list[tuple]:
    """Every row of a table, ordered by id."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
