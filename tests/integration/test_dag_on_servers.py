"""The erasure request of the demo, run by the DAG against each real database through an Airflow
connection (the providers' own SQLAlchemy engines): SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.conftest import DEMO_CONFIG
from tests.dag.conftest import config_folder, run_request, smtp, storage  # noqa: F401 - fixtures

CONN_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}


def airflow_uri(engine: Engine) -> str:
    url = engine.url
    scheme = CONN_SCHEMES[engine.dialect.name]
    if scheme == "sqlite":
        return f"sqlite:///{url.database}"
    return f"{scheme}://{url.username}@{url.host}:{url.port}/{url.database}"


def load_seed(engine: Engine) -> None:
    statements = [s.strip() for s in (DEMO_CONFIG / "seed" / "demo_shop.sql").read_text().split(";")]
    with engine.begin() as conn:
        for statement in statements:
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                conn.execute(text(body))


def rows(engine: Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]


def test_erasure_request_through_an_airflow_connection(engine: Engine, run_request, monkeypatch,  # noqa: F811
                                                        storage: Path, smtp) -> None:  # noqa: F811
    load_seed(engine)
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", airflow_uri(engine))
    _, dag_run, states = run_request("default_erasure_policy", {"email": "jane@example.com"})

    assert dag_run.state == "success", states
    customers = rows(engine, "customer")
    assert customers[0][2] is None and len(customers[0][3]) == 64  # Jane: name nulled, phone hashed
    assert customers[1][2:4] == ("John Roe", "+15555550199")
    assert [a[1] for a in rows(engine, "address")] == ["REDACTED", "2 Side Road", "REDACTED", "4 Hill Lane"]
    assert len(smtp.received) == 1


@pytest.fixture(autouse=True)
def _airflow(airflow_db: None) -> None:
    """The DAG runs need the Airflow metadata DB."""
