"""The erasure request of the demo, run by the DAG against each real database through an Airflow
connection (the providers' own SQLAlchemy engines): SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.databases import airflow_uri, load_seed, rows


def test_erasure_request_through_an_airflow_connection(engine: Engine, run_request, monkeypatch,
                                                        storage: Path, smtp) -> None:
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
