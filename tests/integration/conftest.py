"""Integration fixtures: a throw-away database on each real backend (SQLite, PostgreSQL, MariaDB).

The servers must run on this machine; a test fails (never skips) when one is unreachable, with the
command that starts it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MARIADB_HOST, MARIADB_PORT, MARIADB_USER = "127.0.0.1", 3306, "root"

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
MARIADB_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"

BACKENDS = ("sqlite", "postgresql", "mariadb")


def _database_name() -> str:
    """A unique, lower-case database name, so parallel or aborted runs never collide."""
    return f"prq_test_{secrets.token_hex(6)}"


def _unreachable(server: str, address: str, start: str, exc: Exception) -> None:
    pytest.fail(
        f"{server} at {address} is unreachable: {type(exc).__name__}: {str(exc).strip()}\n"
        f"Start it with: {start}",
        pytrace=False,
    )


def _sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'integration.db'}")
    yield engine
    engine.dispose()


def postgresql_engine(tmp_path: Path) -> Iterator[Engine]:
    import psycopg2

    name = _database_name()

    def admin():
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5)
        conn.autocommit = True
        return conn

    try:
        with closing(admin()) as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    except psycopg2.OperationalError as exc:
        _unreachable("PostgreSQL", f"{PG_HOST}:{PG_PORT}", PG_START, exc)
    engine = create_engine(f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with closing(admin()) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mariadb_engine(tmp_path: Path) -> Iterator[Engine]:
    import MySQLdb

    name = _database_name()

    def admin():
        return MySQLdb.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, passwd="",
                               connect_timeout=5)

    try:
        with closing(admin()) as conn, closing(conn.cursor()) as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    except MySQLdb.OperationalError as exc:
        _unreachable("MariaDB", f"{MARIADB_HOST}:{MARIADB_PORT}", MARIADB_START, exc)
    engine = create_engine(f"mysql+mysqldb://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with closing(admin()) as conn, closing(conn.cursor()) as cur:
            cur.execute("SET SESSION lock_wait_timeout = 10")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


_FACTORIES: dict[str, Callable[[Path], Iterator[Engine]]] = {
    "sqlite": _sqlite_engine,
    "postgresql": postgresql_engine,
    "mariadb": _mariadb_engine,
}


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A SQLAlchemy engine on an empty database of the parametrized backend, dropped afterwards."""
    yield from _FACTORIES[request.param](tmp_path)
