"""A BigQuery dataset through the SQL connector, against the bqemulator stand-in (tests/support/bigquery_server.py):
the engine comes from an Airflow connection's fields (include/privacy_requests/airflow/bigquery.py); access reads
the subject's rows, erasure masks (null and constant in one UPDATE, per-row hashes in one UPDATE ... FROM) and
deletes, the proof reads the rows back, and the preflight checks the real column types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text

from include.privacy_requests.airflow.bigquery import bigquery_engine
from include.privacy_requests.connectors.preflight import erasure_preflight
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.lifecycle import start_request
from include.privacy_requests.request.request import PrivacyRequest, open_request
from include.privacy_requests.steps.collection_steps import access_collection, erase_collection
from include.privacy_requests.store import layout
from tests.support.bigquery_server import PROJECT, bigquery_server

pytestmark = pytest.mark.timeout(600)  # the emulator takes a while to start on a loaded machine
CUSTOMER, ORDERS = CollectionAddress("shop", "customer"), CollectionAddress("shop", "orders")
SEED = [
    "CREATE TABLE shop.customer (id INT64 NOT NULL, email STRING, name STRING, city STRING)",
    "CREATE TABLE shop.orders (id INT64 NOT NULL, customer_id INT64, item STRING)",
    "INSERT INTO shop.customer VALUES (1, 'jane@example.com', 'Jane', 'Oslo'), (2, 'john@example.com', 'John', NULL)",
    "INSERT INTO shop.orders VALUES (10, 1, 'mug'), (11, 1, 'lamp'), (12, 2, 'desk')",
]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with bigquery_server(tmp_path_factory.mktemp("bq") / "bqemulator.log") as url:
        yield url


@pytest.fixture
def engine(endpoint: str) -> Iterator[Engine]:
    """A fresh dataset ``shop`` on the emulator, seeded; the engine as the wing builds it from a connection."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=endpoint))
    client.delete_dataset("shop", delete_contents=True, not_found_ok=True)
    client.create_dataset("shop")
    for statement in SEED:
        client.query(statement).result()
    engine = bigquery_engine("shop_bq", {"project": PROJECT, "api_endpoint": endpoint}, "shop")
    yield engine
    engine.dispose()
    client.delete_dataset("shop", delete_contents=True, not_found_ok=True)


def fld(name: str, categories: list[str], **meta: Any) -> dict[str, Any]:
    return {"name": name, "data_categories": categories, "fides_meta": meta}


def config_for(tmp_path: Path) -> PrivacyConfig:
    folder = tmp_path / "privacy"
    (folder / "datasets").mkdir(parents=True)
    (folder / "policies").mkdir()
    (folder / "privacy.yml").write_text(yaml.safe_dump({
        "organization": "Test", "storage": f"file://{tmp_path / 'storage'}",
        "datasets": {"shop": {"conn_id": "shop_bq"}}}))
    (folder / "datasets" / "shop.yml").write_text(yaml.safe_dump({"dataset": [{"fides_key": "shop", "collections": [
        {"name": "customer", "fields": [
            fld("id", ["system.operations"], primary_key=True, data_type="integer"),
            fld("email", ["user.contact.email"], identity="email", data_type="string"),
            fld("name", ["user.name"], data_type="string"),
            fld("city", ["user.contact.address.city"], data_type="string")]},
        {"name": "orders", "fields": [
            fld("id", ["system.operations"], primary_key=True, data_type="integer"),
            fld("customer_id", ["system.operations"], data_type="integer", references=[
                {"dataset": "shop", "field": "customer.id", "direction": "from"}]),
            fld("item", ["user.behavior.purchase_history"], data_type="string")]},
    ]}]}))
    (folder / "policies" / "erase.yml").write_text(yaml.safe_dump({"policy": [{"key": "erase", "rules": [
        {"key": "access", "action": "access", "targets": ["user"]},
        {"key": "names", "action": "erasure", "targets": ["user.name"],
         "masking_strategy": {"strategy": "null_rewrite"}},
        {"key": "cities", "action": "erasure", "targets": ["user.contact.address"],
         "masking_strategy": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "MASKED"}}},
        {"key": "emails", "action": "erasure", "targets": ["user.contact.email"],
         "masking_strategy": {"strategy": "hash", "configuration": {"algorithm": "SHA-256"}}},
        {"key": "orders", "action": "erasure", "targets": ["user.behavior"],
         "masking_strategy": {"strategy": "delete"}},
    ]}]}))
    return load_config(folder)


def started(config: PrivacyConfig, tmp_path: Path, engine: Engine) -> PrivacyRequest:
    request = open_request(config, {"policy": "erase", "identity": {"email": "jane@example.com"}, "request_id": "r-1"},
                           "run-1", tmp_path / "storage", Fernet.generate_key().decode())
    start_request(request, "run-1", "2026-12-04T00:00:00+00:00")
    for address in config.plan.order:
        access_collection(request, address, lambda _: SqlConnector(engine))
    return request


def rows(engine: Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM shop.{table} ORDER BY id"))]


def test_access_masking_deleting_and_proof_on_bigquery(tmp_path: Path, engine: Engine) -> None:
    config = config_for(tmp_path)
    assert erasure_preflight(config, config.policies["erase"], lambda _: engine) == []
    request = started(config, tmp_path, engine)
    found = list(request.store.read_rows(layout.rows(CUSTOMER)))
    assert [r["id"] for r in found] == [1]
    assert sorted(r["id"] for r in request.store.read_rows(layout.rows(ORDERS))) == [10, 11]

    orders = SqlConnector(engine)
    outcome = erase_collection(request, ORDERS, lambda _: orders, try_number=1)
    assert outcome.detail["deleted"] == 2 and outcome.detail["verified"] == 2
    assert rows(engine, "orders") == [(12, 2, "desk")]
    assert orders.statements == 2  # one DELETE, one count back

    customer = SqlConnector(engine)
    outcome = erase_collection(request, CUSTOMER, lambda _: customer, try_number=1)
    assert outcome.masked == 1 and outcome.detail["verified"] == 1
    assert customer.statements == 2  # one pair UPDATE (hash + NULL + constant), one read-back
    (jane, john) = rows(engine, "customer")
    assert jane[0] == 1 and jane[2] is None and jane[3] == "MASKED"
    assert jane[1] != "jane@example.com" and len(jane[1]) == 64
    assert john == (2, "john@example.com", "John", None)
    assert request.store.exists(layout.erasure_ledger(CUSTOMER))


def test_the_preflight_reads_bigquery_column_types(tmp_path: Path, engine: Engine) -> None:
    """A NULL cannot go into a REQUIRED column: said before anything is touched, from the table's schema."""
    with engine.begin() as conn:
        conn.execute(text("CREATE OR REPLACE TABLE shop.customer (id INT64 NOT NULL, email STRING, "
                          "name STRING NOT NULL, city STRING)"))
    config = config_for(tmp_path)
    (problem,) = erasure_preflight(config, config.policies["erase"], lambda _: engine)
    assert problem.startswith("shop:customer.name") and "NOT NULL" in problem.upper()


def test_the_wing_builds_the_engine_from_an_airflow_connection(endpoint: str, engine: Engine,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``sql_engine`` (the one place a dataset's conn_id becomes an engine) on a google_cloud_platform connection."""
    import json

    from include.privacy_requests.airflow.hooks import sql_engine

    monkeypatch.setenv("AIRFLOW_CONN_SHOP_BQ", json.dumps({
        "conn_type": "google_cloud_platform", "schema": "shop",
        "extra": {"project": PROJECT, "api_endpoint": endpoint}}))
    built = sql_engine("shop_bq")
    try:
        with built.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM customer")).scalar_one() == 2
    finally:
        built.dispose()


@pytest.fixture
def demo_shop(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The demo shop in the dataset ``demo_shop`` of the stand-in, behind the demo's connection id."""
    import json

    from tests.support.databases import load_seed

    engine = bigquery_engine("demo_shop_db", {"project": PROJECT, "api_endpoint": endpoint}, "demo_shop")
    client = engine.raw_connection().driver_connection._client
    client.delete_dataset("demo_shop", delete_contents=True, not_found_ok=True)
    client.create_dataset("demo_shop")
    load_seed(engine)
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", json.dumps({
        "conn_type": "google_cloud_platform", "schema": "demo_shop",
        "extra": {"project": PROJECT, "api_endpoint": endpoint}}))
    yield engine
    engine.dispose()
    client.delete_dataset("demo_shop", delete_contents=True, not_found_ok=True)


def test_the_demo_erasure_request_runs_on_bigquery_through_an_airflow_connection(demo_shop: Engine, run_request,
                                                                                  storage: Path, smtp) -> None:
    import json

    from tests.support.databases import rows as all_rows

    _, dag_run, states = run_request("default_erasure_policy", {"email": "jane@example.com"})
    assert dag_run.state == "success", states
    customers = all_rows(demo_shop, "customer")
    assert customers[0][2] is None and len(customers[0][3]) == 64  # Jane: name nulled, phone hashed
    assert customers[1][2:4] == ("John Roe", "+15555550199")
    report = json.loads((storage / "req-1" / "report.json").read_text())
    customer = next(c for c in report["collections"] if c["collection"] == "demo_shop:customer")
    assert customer["erasure"]["masked"] == 1 and customer["erasure"]["verified"] == 1
