"""Erasure by deleting the record, in the engine: the policy syntax and its checks, the erasure order (rows that
reference a deleted row go first), the SQL connector's deletes and their proof, exactly once, the dry run's
plan, and the counts of the report and the certificate. On the demo shop in SQLite."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, event

from include.privacy_requests.connectors.base import ErasureWork
from include.privacy_requests.connectors.preflight import erasure_preflight
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.errors import ConfigError, DataSourceError
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.certificate import render_certificate
from include.privacy_requests.request.lifecycle import start_request
from include.privacy_requests.request.report import build_report
from include.privacy_requests.request.request import PrivacyRequest, open_request
from include.privacy_requests.steps.collection_steps import access_collection, erase_collection
from include.privacy_requests.steps.erasure_plan import plan_erasure
from include.privacy_requests.store import layout

DEMO = Path(__file__).resolve().parents[2] / "include" / "privacy"
DELETE_POLICY = {"policy": [{"key": "delete_policy", "rules": [
    {"key": "delete_people", "action": "erasure", "targets": ["user"], "masking_strategy": {"strategy": "delete"}}]}]}


def shop(name: str) -> CollectionAddress:
    return CollectionAddress("demo_shop", name)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "privacy"
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns("seed"))
    (target / "policies" / "delete.yml").write_text(yaml.safe_dump(DELETE_POLICY))
    return target


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as con:
        con.executescript((DEMO / "seed" / "demo_shop.sql").read_text())
    return path


def problems(folder: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    return [str(p) for p in info.value.problems]


def write_policy(folder: Path, rules: list[dict[str, Any]]) -> None:
    (folder / "policies" / "delete.yml").write_text(yaml.safe_dump({"policy": [{"key": "delete_policy",
                                                                                "rules": rules}]}))


def test_a_delete_rule_with_a_configuration_is_refused_naming_file_and_rule(folder: Path) -> None:
    write_policy(folder, [{"key": "wipe", "action": "erasure", "targets": ["user.name"],
                           "masking_strategy": {"strategy": "delete", "configuration": {"cascade": True}}}])
    found = problems(folder)
    assert len(found) == 1
    assert found[0].startswith("policies/delete.yml: policy[0].rules[0].masking_strategy.configuration: rule 'wipe'")
    assert "takes no configuration" in found[0]


def test_an_unknown_strategy_lists_delete_among_the_known(folder: Path) -> None:
    write_policy(folder, [{"key": "wipe", "action": "erasure", "targets": ["user.name"],
                           "masking_strategy": {"strategy": "drop"}}])
    (found,) = problems(folder)
    assert "rule 'wipe': unknown masking strategy 'drop'" in found and "delete" in found


def test_rows_referencing_a_deleted_row_are_erased_first(folder: Path) -> None:
    """The shop's references say which table holds the key of which: orders, logins and cards point at a
    customer, order items at an order, customers, orders and cards at an address."""
    config = load_config(folder)
    waits = config.erasure_waits
    vendor = CollectionAddress("daycare_vendor", "daycare_customer")  # the vendor's instruction, too
    assert waits[shop("customer")] == {shop("orders"), shop("login"), shop("payment_card"), vendor}
    assert waits[shop("orders")] == {shop("order_item")}
    assert waits[shop("address")] == {shop("customer"), shop("orders"), shop("payment_card")}
    assert waits[shop("login")] == set()


def test_a_delete_order_that_contradicts_erase_after_is_a_cycle(folder: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        orders = next(c for c in data["dataset"][0]["collections"] if c["name"] == "orders")
        orders["fides_meta"] = {"erase_after": ["demo_shop.customer"]}

    path = folder / "datasets" / "demo_shop.yml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    (found,) = problems(folder)
    assert "cycle among: demo_shop:customer, demo_shop:orders" in found and "primary key" in found


def test_masking_policies_keep_the_erasure_order_of_erase_after_only(folder: Path) -> None:
    (folder / "policies" / "delete.yml").unlink()
    config = load_config(folder)
    assert all(not waits for waits in config.erasure_waits.values())


def started(config: PrivacyConfig, tmp_path: Path, db: Path, **conf: Any) -> tuple[PrivacyRequest, Callable]:
    engine = create_engine(f"sqlite:///{db}")
    request = open_request(config, {"policy": "delete_policy", "identity": {"email": "jane@example.com"},
                                    "request_id": "r-1", **conf}, "run-1", tmp_path / "storage",
                           Fernet.generate_key().decode())
    start_request(request, "run-1", datetime.now(UTC).isoformat())
    connector = SqlConnector(engine)
    for address in config.plan.order:
        if address.dataset == "demo_shop":
            access_collection(request, address, lambda _: connector)
    return request, lambda _: SqlConnector(engine)


def erasure_order(config: PrivacyConfig) -> list[CollectionAddress]:
    done: list[CollectionAddress] = []
    left = [a for a in config.plan.order if a.dataset == "demo_shop"]
    while left:
        ready = next(a for a in left if config.erasure_waits[a] <= set(done) | {
            b for b in config.erasure_waits[a] if b.dataset != "demo_shop"})
        done.append(ready)
        left.remove(ready)
    return done


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchone()[0]


def test_delete_erasure_deletes_the_subjects_rows_once_and_proves_they_are_gone(folder: Path, tmp_path: Path,
                                                                                db: Path) -> None:
    config = load_config(folder)
    request, connector_for = started(config, tmp_path, db)
    deleted = {}
    for address in erasure_order(config):
        outcome = erase_collection(request, address, connector_for, try_number=1)
        assert outcome.status == "complete" and outcome.masked == 0
        deleted[address.collection] = outcome.detail["deleted"]
        assert outcome.detail["verified"] == outcome.detail["deleted"]
    assert deleted == {"customer": 1, "address": 2, "orders": 2, "order_item": 3, "login": 2, "payment_card": 1,
                       "sms_subscription": 1}
    assert count(db, "SELECT COUNT(*) FROM customer WHERE email = 'jane@example.com'") == 0
    assert count(db, "SELECT COUNT(*) FROM customer") == 2 and count(db, "SELECT COUNT(*) FROM orders") == 1
    assert count(db, "SELECT COUNT(*) FROM order_item") == 1 and count(db, "SELECT COUNT(*) FROM address") == 2

    ledger = request.store.get(layout.erasure_ledger(shop("order_item")))
    assert (ledger["masked"], ledger["action"], ledger["try_number"]) == (3, "delete", 1)
    again = erase_collection(request, shop("order_item"), connector_for, try_number=2)  # a clear: nothing redone
    assert (again.detail["deleted"], again.masked, again.statements) == (3, 0, 0)

    events = [e for e in request.store.events() if e["event"] in ("collection_deleted", "erasure_verified")]
    assert {(e["event"], e["collection"]) for e in events} >= {("collection_deleted", "demo_shop:customer"),
                                                               ("erasure_verified", "demo_shop:customer")}
    report = build_report(request).body
    assert (report["rows_deleted"], report["rows_masked"]) == (12, 0)
    customer = next(c for c in report["collections"] if c["collection"] == "demo_shop:customer")
    assert customer["erasure"]["deleted"] == 1 and customer["erasure"]["deleted_at_try"] == 1
    html = render_certificate(organization="Org", policy_name="Delete", report=report, report_json="{}",
                              received=None, due=None, issued=datetime.now(UTC))
    assert "Rows deleted" in html and "rows deleted: 12" in html


def test_one_delete_statement_per_batch_and_one_count_to_prove_it(folder: Path, tmp_path: Path, db: Path) -> None:
    config = load_config(folder)
    request, _ = started(config, tmp_path, db)
    engine = create_engine(f"sqlite:///{db}")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2].split()[0].upper()))
    connector = SqlConnector(engine)
    erase_collection(request, shop("order_item"), lambda _: connector, try_number=1)
    assert [s for s in statements if s in ("DELETE", "SELECT")] == ["DELETE", "SELECT"]
    assert connector.statements == 2


def test_a_row_still_there_after_the_delete_fails_the_step_and_the_next_try_deletes_what_is_left(
        folder: Path, tmp_path: Path, db: Path) -> None:
    config = load_config(folder)
    request, connector_for = started(config, tmp_path, db)
    with sqlite3.connect(db) as con:  # a trigger that puts one login back, as a replica or a sync job might
        con.execute("CREATE TABLE kept AS SELECT * FROM login WHERE id = 101")
        con.execute("CREATE TRIGGER keep AFTER DELETE ON login WHEN OLD.id = 101 BEGIN "
                    "INSERT INTO login SELECT * FROM kept; END")
    with pytest.raises(DataSourceError, match="1 of 2 deleted row\\(s\\) are still there"):
        erase_collection(request, shop("login"), connector_for, try_number=1)
    assert not request.store.exists(layout.erasure_ledger(shop("login")))
    with sqlite3.connect(db) as con:
        con.execute("DROP TRIGGER keep")
    outcome = erase_collection(request, shop("login"), connector_for, try_number=2)
    assert outcome.detail["deleted"] == 3  # two by the first try (one came back), one by this one
    assert count(db, "SELECT COUNT(*) FROM login WHERE customer_id = 1") == 0


def test_a_dry_run_plans_the_rows_to_delete_and_deletes_none(folder: Path, tmp_path: Path, db: Path) -> None:
    config = load_config(folder)
    request, connector_for = started(config, tmp_path, db, dry_run=True)
    outcome = erase_collection(request, shop("order_item"), connector_for, try_number=1)
    assert outcome.status == "planned"
    assert outcome.detail["plan"] == {"rows": 3, "action": "delete", "fields": {}, "skipped": {}}
    assert count(db, "SELECT COUNT(*) FROM order_item") == 4
    collection = config.graph.collections[shop("customer")]
    work = ErasureWork(request, collection, config.policies["delete_policy"].erasure_fields(collection),
                       lambda: iter([{"id": 1}, {"id": 1}]))
    assert plan_erasure(work, "sql", connector_for("demo_shop"))["rows"] == 1  # a key found twice, deleted once


def test_the_masking_preflight_leaves_deleted_collections_alone(folder: Path, db: Path) -> None:
    """Deleting writes no column: a hash that would not fit is no problem; SQLite without PRAGMA foreign_keys
    enforces no foreign key."""
    config = load_config(folder)
    engine = create_engine(f"sqlite:///{db}")
    assert erasure_preflight(config, config.policies["delete_policy"], lambda _: engine) == []
