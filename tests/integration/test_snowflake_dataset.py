"""A dataset on Snowflake: its engine comes from the Snowflake provider's hook for an Airflow connection of type
``snowflake``, and access, masking (constant and per-row masks in one joined UPDATE each), deleting, the
preflight and the proof of erasure run on the Snowflake dialect. fakesnow stands in for Snowflake: its own HTTP
server on a free loopback port, started and stopped here (tests/support/snowflake_server.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.support.databases import load_seed, rows
from tests.support.snowflake_server import SnowflakeServer, database_name, snowflake_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnowflakeServer]:
    with snowflake_server(tmp_path_factory.mktemp("fakesnow") / "fakesnow.log") as running:
        yield running


@pytest.fixture
def shop(server: SnowflakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The demo shop in a database of its own on the stand-in, behind the demo's connection id."""
    database = database_name()
    engine = server.engine(database)
    load_seed(engine)
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", server.airflow_connection(database))
    yield engine
    engine.dispose()


def test_the_engine_comes_from_the_snowflake_providers_hook(shop: Engine) -> None:
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    from include.privacy_requests.airflow.hooks import sql_engine

    engine = sql_engine("demo_shop_db")
    hook = SnowflakeHook(snowflake_conn_id="demo_shop_db")
    assert engine.dialect.name == "snowflake" and engine.url.host == hook.get_sqlalchemy_engine().url.host
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM customer WHERE id = 1")).scalar_one() == "Jane Doe"
    engine.dispose()


def test_an_erasure_request_runs_on_snowflake_through_an_airflow_connection(shop: Engine, run_request,
                                                                             storage: Path, smtp) -> None:
    _, dag_run, states = run_request("default_erasure_policy", {"email": "jane@example.com"})

    assert dag_run.state == "success", states
    customers = rows(shop, "customer")
    assert customers[0][2] is None and len(customers[0][3]) == 64  # Jane: name nulled, phone hashed
    assert customers[1][2:4] == ("John Roe", "+15555550199")
    assert [a[1] for a in rows(shop, "address")] == ["REDACTED", "2 Side Road", "REDACTED", "4 Hill Lane"]
    assert [c[2:4] for c in rows(shop, "payment_card")] == [(None, None), ("Ada Poe", "5500000000000004")]
    report = json.loads((storage / "req-1" / "report.json").read_text())
    customer = next(c for c in report["collections"] if c["collection"] == "demo_shop:customer")
    assert customer["erasure"]["masked"] == 1 and customer["erasure"]["verified"] == 1
    assert customer["erasure"]["statements"] >= 2  # the joined UPDATE and its counting proof
    assert len(smtp.received) == 1
