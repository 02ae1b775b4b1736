"""Erasure by deleting the record on real databases with real foreign keys (PostgreSQL, MariaDB, and SQLite with
``PRAGMA foreign_keys`` on): rows that reference a deleted row go first, the preflight names a foreign key
that would refuse a delete before anything changes, a refused delete changes nothing, and a row that is still
there after its delete fails the step until a clear deletes what is left."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, event, text

from include.privacy_requests.connectors.preflight import erasure_preflight
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.errors import DataSourceError
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.lifecycle import start_request
from include.privacy_requests.request.request import PrivacyRequest, open_request
from include.privacy_requests.steps.collection_steps import access_collection, erase_collection
from include.privacy_requests.store import layout

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
MARIADB = "mysql+mysqldb://root@127.0.0.1:3306"
CUSTOMER, ORDERS, VISIT = (CollectionAddress("shop", n) for n in ("customer", "orders", "visit"))
SCHEMA = [
    "CREATE TABLE customer (id INTEGER PRIMARY KEY, email VARCHAR(255), name VARCHAR(255))",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, item VARCHAR(255), "
    "CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customer (id))",
    "CREATE TABLE visit (id INTEGER PRIMARY KEY, customer_id INTEGER, page VARCHAR(255), "
    "CONSTRAINT visit_customer FOREIGN KEY (customer_id) REFERENCES customer (id))",
    "INSERT INTO customer VALUES (1, 'jane@example.com', 'Jane'), (2, 'john@example.com', 'John')",
    "INSERT INTO orders VALUES (10, 1, 'mug'), (11, 1, 'lamp'), (12, 2, 'desk')",
    "INSERT INTO visit VALUES (20, 1, '/home'), (21, 2, '/cart')",
]


def _server_database(url: str, name: str, create: bool) -> None:
    admin = create_engine(url + ("/postgres" if url.startswith("postgresql") else ""), isolation_level="AUTOCOMMIT")
    try:
        with closing(admin.connect()) as conn:
            if create:
                conn.execute(text(f"CREATE DATABASE {name}"))
            elif url.startswith("postgresql"):
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        admin.dispose()


def _database(kind: str, tmp_path: Path) -> Iterator[Engine]:
    """An empty database named after this branch (warehouses_...), dropped afterwards."""
    if kind == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
        event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys = ON"))
        yield engine
        engine.dispose()
        return
    url = PG if kind == "postgresql" else MARIADB
    name = f"warehouses_{secrets.token_hex(5)}"
    _server_database(url, name, create=True)
    engine = create_engine(f"{url}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        _server_database(url, name, create=False)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from _database(request.param, tmp_path)


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The servers with foreign keys always on."""
    yield from _database(request.param, tmp_path)


def fld(name: str, categories: list[str], **meta: Any) -> dict[str, Any]:
    return {"name": name, "data_categories": categories, "fides_meta": meta}


def ref(field: str) -> dict[str, Any]:
    return {"references": [{"dataset": "shop", "field": field, "direction": "from"}]}


POLICY_RULES = [
    {"key": "delete_people", "action": "erasure", "targets": ["user.name", "user.behavior"],
     "masking_strategy": {"strategy": "delete"}},
    {"key": "unlink_visits", "action": "erasure", "targets": ["user.unique_id"],
     "masking_strategy": {"strategy": "null_rewrite"}},
]


def config_for(tmp_path: Path, rules: list[dict[str, Any]] = POLICY_RULES) -> PrivacyConfig:
    folder = tmp_path / "privacy"
    (folder / "datasets").mkdir(parents=True, exist_ok=True)
    (folder / "policies").mkdir(exist_ok=True)
    (folder / "privacy.yml").write_text(yaml.safe_dump({
        "organization": "Test", "storage": f"file://{tmp_path / 'storage'}",
        "datasets": {"shop": {"conn_id": "shop_db"}}}))
    (folder / "datasets" / "shop.yml").write_text(yaml.safe_dump({"dataset": [{"fides_key": "shop", "collections": [
        {"name": "customer", "fields": [
            fld("id", ["system.operations"], primary_key=True, data_type="integer"),
            fld("email", ["user.contact.email"], identity="email", data_type="string"),
            fld("name", ["user.name"], data_type="string")]},
        {"name": "orders", "fields": [
            fld("id", ["system.operations"], primary_key=True, data_type="integer"),
            fld("customer_id", ["system.operations"], data_type="integer", **ref("customer.id")),
            fld("item", ["user.behavior.purchase_history"], data_type="string")]},
        {"name": "visit", "fields": [
            fld("id", ["system.operations"], primary_key=True, data_type="integer"),
            fld("customer_id", ["user.unique_id"], data_type="integer", **ref("customer.id")),
            fld("page", ["system.operations"], data_type="string")]},
    ]}]}))
    (folder / "policies" / "delete.yml").write_text(yaml.safe_dump({"policy": [{"key": "delete", "rules": rules}]}))
    return load_config(folder)


def seeded(engine: Engine, extra: list[str] = ()) -> None:
    with engine.begin() as conn:
        for statement in [*SCHEMA, *extra]:
            conn.execute(text(statement))


def started(config: PrivacyConfig, tmp_path: Path, engine: Engine) -> PrivacyRequest:
    request = open_request(config, {"policy": "delete", "identity": {"email": "jane@example.com"},
                                    "request_id": "r-1"}, "run-1", tmp_path / "storage",
                           Fernet.generate_key().decode())
    start_request(request, "run-1", "2026-12-04T00:00:00+00:00")
    for address in config.plan.order:
        access_collection(request, address, lambda _: SqlConnector(engine))
    return request


def rows(engine: Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]


def test_children_are_erased_before_the_deleted_parent_on_every_backend(tmp_path: Path, engine: Engine) -> None:
    seeded(engine)
    config = config_for(tmp_path)
    assert config.erasure_waits[CUSTOMER] == {ORDERS, VISIT}
    assert erasure_preflight(config, config.policies["delete"], lambda _: engine) == []
    request = started(config, tmp_path, engine)
    outcomes = {a: erase_collection(request, a, lambda _: SqlConnector(engine), try_number=1)
                for a in (ORDERS, VISIT, CUSTOMER)}  # the order of the DAG's erasure edges
    assert outcomes[ORDERS].detail["deleted"] == 2 and outcomes[VISIT].masked == 1
    assert outcomes[CUSTOMER].detail["deleted"] == 1 and outcomes[CUSTOMER].detail["verified"] == 1
    assert rows(engine, "customer") == [(2, "john@example.com", "John")]
    assert rows(engine, "orders") == [(12, 2, "desk")]
    assert rows(engine, "visit") == [(20, None, "/home"), (21, 2, "/cart")]
    assert request.store.get(layout.erasure_ledger(CUSTOMER))["action"] == "delete"


def test_the_preflight_names_a_foreign_key_no_collection_declares(tmp_path: Path, server: Engine) -> None:
    seeded(server, [
        "CREATE TABLE review (id INTEGER PRIMARY KEY, author_id INTEGER, "
        "CONSTRAINT review_author FOREIGN KEY (author_id) REFERENCES customer (id))",
        "CREATE TABLE note (id INTEGER PRIMARY KEY, customer_id INTEGER, "
        "CONSTRAINT note_customer FOREIGN KEY (customer_id) REFERENCES customer (id) ON DELETE CASCADE)",
        "INSERT INTO review VALUES (30, 1)"])
    config = config_for(tmp_path)
    (problem,) = erasure_preflight(config, config.policies["delete"], lambda _: server)
    assert problem.startswith("shop:customer: deleting its records would be refused by foreign key review_author of "
                              "table 'review' (author_id) -> 'customer' (id)")
    assert "not a collection of any dataset" in problem and "author_id' referencing shop.customer.id" in problem
    assert rows(server, "customer")[0][0] == 1  # a preflight reads metadata only


def test_the_preflight_names_a_referencing_collection_the_policy_leaves_in_place(tmp_path: Path,
                                                                                  server: Engine) -> None:
    seeded(server)
    config = config_for(tmp_path, POLICY_RULES[:1])  # visits are neither deleted nor unlinked
    (problem,) = erasure_preflight(config, config.policies["delete"], lambda _: server)
    assert "foreign key visit_customer of table 'visit'" in problem
    assert "policy 'delete' leaves shop:visit's key (customer_id) in place" in problem


def test_a_delete_the_database_refuses_changes_nothing(tmp_path: Path, server: Engine) -> None:
    """Without the preflight (or with a row added after it), the database refuses: the collection's
    transaction rolls back whole, the step fails without a retry, and nothing is in the ledger."""
    seeded(server)
    config = config_for(tmp_path)
    request = started(config, tmp_path, server)
    with pytest.raises(DataSourceError, match="shop:customer: .*the database refused the delete, a foreign key"):
        erase_collection(request, CUSTOMER, lambda _: SqlConnector(server), try_number=1)
    assert [r[0] for r in rows(server, "customer")] == [1, 2]
    assert not request.store.exists(layout.erasure_ledger(CUSTOMER))


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Engine]:
    yield from _database("postgresql", tmp_path)


def test_a_row_a_trigger_keeps_fails_the_proof_and_a_clear_deletes_what_is_left(tmp_path: Path, pg: Engine) -> None:
    seeded(pg, ["CREATE FUNCTION keep_mug() RETURNS trigger AS $$ BEGIN "
                "IF OLD.id = 10 THEN RETURN NULL; END IF; RETURN OLD; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER keep_mug BEFORE DELETE ON orders FOR EACH ROW EXECUTE FUNCTION keep_mug()"])
    request = started(config_for(tmp_path), tmp_path, pg)
    with pytest.raises(DataSourceError, match="1 of 2 deleted row\\(s\\) are still there") as failure:
        erase_collection(request, ORDERS, lambda _: SqlConnector(pg), try_number=1)
    assert "mug" not in str(failure.value)
    assert not request.store.exists(layout.erasure_ledger(ORDERS))
    with pg.begin() as conn:
        conn.execute(text("DROP TRIGGER keep_mug ON orders"))
    outcome = erase_collection(request, ORDERS, lambda _: SqlConnector(pg), try_number=2)
    assert outcome.detail["deleted"] == 2 and outcome.detail["verified"] == 2
    assert rows(pg, "orders") == [(12, 2, "desk")]
    assert not request.store.exists(layout.unverified(ORDERS))
