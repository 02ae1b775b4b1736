"""A dataset on Snowflake: its engine comes from the Snowflake provider's hook for an Airflow connection of type
``snowflake``, and access, masking (constant and per-row masks in one joined UPDATE each), deleting, the
preflight and the proof of erasure run on the Snowflake dialect. fakesnow stands in for Snowflake: its own HTTP
server on a free loopback port, started and stopped here (tests/support/snowflake_server.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text

from include.privacy_requests.connectors.preflight import erasure_preflight
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.lifecycle import start_request
from include.privacy_requests.request.request import PrivacyRequest, open_request
from include.privacy_requests.steps.collection_steps import access_collection, erase_collection
from include.privacy_requests.store import layout
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


CUSTOMER, ORDERS = CollectionAddress("wh", "customer"), CollectionAddress("wh", "orders")


def _fld(name: str, categories: list[str], **meta: Any) -> dict[str, Any]:
    return {"name": name, "data_categories": categories, "fides_meta": meta}


def _config(tmp_path: Path, rules: list[dict[str, Any]], name_length: int | None = None) -> PrivacyConfig:
    folder = tmp_path / "privacy"
    (folder / "datasets").mkdir(parents=True, exist_ok=True)
    (folder / "policies").mkdir(exist_ok=True)
    (folder / "privacy.yml").write_text(yaml.safe_dump({
        "organization": "Test", "storage": f"file://{tmp_path / 'storage'}",
        "datasets": {"wh": {"conn_id": "warehouse"}}}))
    name = {"length": name_length} if name_length else {}
    (folder / "datasets" / "wh.yml").write_text(yaml.safe_dump({"dataset": [{"fides_key": "wh", "collections": [
        {"name": "customer", "fields": [
            _fld("id", ["system.operations"], primary_key=True, data_type="integer"),
            _fld("email", ["user.contact.email"], identity="email", data_type="string"),
            _fld("name", ["user.name"], data_type="string", **name),
            _fld("phone", ["user.contact.phone_number"], data_type="string")]},
        {"name": "orders", "fields": [
            _fld("id", ["system.operations"], primary_key=True, data_type="integer"),
            _fld("customer_id", ["system.operations"], data_type="integer",
                 references=[{"dataset": "wh", "field": "customer.id", "direction": "from"}]),
            _fld("item", ["user.behavior.purchase_history"], data_type="string")]},
    ]}]}))
    (folder / "policies" / "p.yml").write_text(yaml.safe_dump({"policy": [{"key": "p", "rules": rules}]}))
    return load_config(folder)


HASH_PHONES = {"key": "phones", "action": "erasure", "targets": ["user.contact.phone_number"],
               "masking_strategy": {"strategy": "hash", "configuration": {"algorithm": "SHA-256"}}}
NULL_NAMES = {"key": "names", "action": "erasure", "targets": ["user.name"],
              "masking_strategy": {"strategy": "null_rewrite"}}
DELETE_ALL = {"key": "gone", "action": "erasure", "targets": ["user.name", "user.behavior"],
              "masking_strategy": {"strategy": "delete"}}


@pytest.fixture
def warehouse(server: SnowflakeServer) -> Iterator[Engine]:
    """A database with a customer table whose key orders declare as a foreign key (informational on Snowflake)."""
    engine = server.engine(database_name())
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customer (id INTEGER PRIMARY KEY, email VARCHAR(255), name VARCHAR(40), "
                          "phone VARCHAR(64))"))
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, item VARCHAR(255), "
                          "CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customer (id))"))
        conn.execute(text("INSERT INTO customer VALUES (1, 'jane@example.com', 'Jane', '+15555550100'), "
                          "(2, 'john@example.com', 'John', '+15555550199'), (3, 'jane@example.com', 'J.', NULL)"))
        conn.execute(text("INSERT INTO orders VALUES (10, 1, 'mug'), (11, 3, 'lamp'), (12, 2, 'desk')"))
    yield engine
    engine.dispose()


def _accessed(config: PrivacyConfig, tmp_path: Path, engine: Engine) -> PrivacyRequest:
    request = open_request(config, {"policy": "p", "identity": {"email": "jane@example.com"}, "request_id": "r-1"},
                           "run-1", tmp_path / "storage", Fernet.generate_key().decode())
    start_request(request, "run-1", "2026-12-04T00:00:00+00:00")
    for address in config.plan.order:
        access_collection(request, address, lambda _: SqlConnector(engine))
    return request


def test_masks_on_snowflake_are_one_joined_update_and_one_counting_proof(tmp_path: Path, warehouse: Engine) -> None:
    config = _config(tmp_path, [NULL_NAMES, HASH_PHONES])
    assert erasure_preflight(config, config.policies["p"], lambda _: warehouse) == []
    request = _accessed(config, tmp_path, warehouse)
    connector = SqlConnector(warehouse)
    outcome = erase_collection(request, CUSTOMER, lambda _: connector, try_number=1)

    assert outcome.masked == 2 and outcome.detail["verified"] == 2
    assert connector.statements == 2  # the UPDATE ... FROM (SELECT * FROM VALUES ...) and its SELECT COUNT(*)
    with warehouse.connect() as conn:
        found = {r.id: (r.name, r.phone) for r in conn.execute(text("SELECT id, name, phone FROM customer"))}
    expected = hashlib.sha256(("+15555550100" + request.store.get(layout.SECRETS)["salt"]).encode()).hexdigest()
    assert found[1] == (None, expected)
    assert found[3] == (None, None)  # a value found NULL stays NULL
    assert found[2] == ("John", "+15555550199")


def test_deleting_on_snowflake_is_counted_back_and_its_foreign_keys_are_not_preflighted(tmp_path: Path,
                                                                                        warehouse: Engine) -> None:
    """Snowflake does not enforce foreign keys on standard tables, so the preflight names none; the erasure order
    still deletes the orders before their customers (fakesnow, on DuckDB, would refuse the other order)."""
    config = _config(tmp_path, [DELETE_ALL])
    assert erasure_preflight(config, config.policies["p"], lambda _: warehouse) == []
    request = _accessed(config, tmp_path, warehouse)
    assert erase_collection(request, ORDERS, lambda _: SqlConnector(warehouse), try_number=1).detail["deleted"] == 2
    connector = SqlConnector(warehouse)
    outcome = erase_collection(request, CUSTOMER, lambda _: connector, try_number=1)

    assert outcome.detail["deleted"] == 2 and outcome.detail["verified"] == 2
    assert connector.statements == 2  # one DELETE, one SELECT COUNT(*)
    assert [r[0] for r in rows(warehouse, "customer")] == [2]
    assert [r[0] for r in rows(warehouse, "orders")] == [12]


def test_the_preflight_reads_snowflake_column_types(tmp_path: Path, warehouse: Engine) -> None:
    config = _config(tmp_path, [{**HASH_PHONES, "targets": ["user.name"]}])
    (problem,) = erasure_preflight(config, config.policies["p"], lambda _: warehouse)
    assert problem.startswith("wh:customer.name") and "writes 64 characters but the column is VARCHAR(40)" in problem
    assert _config(tmp_path, [{**HASH_PHONES, "targets": ["user.name"]}], name_length=40).policies["p"]


def test_ten_thousand_rows_of_one_subject_take_few_statements(tmp_path: Path, server: SnowflakeServer) -> None:
    """Warehouses want few large statements: 10,000 rows are found in one SELECT, masked per row in two joined
    UPDATEs of 5,000 and proved by two counting SELECTs."""
    engine = server.engine(database_name())
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customer (id INTEGER PRIMARY KEY, email VARCHAR(255), name VARCHAR(40), "
                          "phone VARCHAR(64))"))
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, item VARCHAR(255))"))
        conn.execute(text("INSERT INTO customer SELECT seq4() + 1, 'jane@example.com', 'Jane', "
                          "'+1555' || (seq4() + 1) FROM TABLE(GENERATOR(ROWCOUNT => 10000))"))
    config = _config(tmp_path, [HASH_PHONES])
    request = _accessed(config, tmp_path, engine)
    connector = SqlConnector(engine)
    outcome = erase_collection(request, CUSTOMER, lambda _: connector, try_number=1)
    assert outcome.masked == 10_000 and outcome.detail["verified"] == 10_000
    assert connector.statements == 4
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM customer WHERE LENGTH(phone) = 64")).scalar_one() == 10_000
    engine.dispose()
