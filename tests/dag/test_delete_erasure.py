"""Erasure by deleting the record, through the DAGs (dag.test on the demo shop in SQLite): the erasure tasks
wait for the collections that reference a deleted row, the subject's rows are gone and nobody else's, the
report and the certificate count deleted rows, a dry run deletes nothing, and a batch deletes every subject's
rows once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.dag_runs import table, task_states

POLICY = "delete_policy"
DELETE_POLICY = {"policy": [{"key": POLICY, "name": "Delete my account", "rules": [
    {"key": "delete_people", "action": "erasure", "targets": ["user"], "masking_strategy": {"strategy": "delete"}}]}]}
JANE = {"email": "jane@example.com"}
JANES_ROWS = 12  # customer 1, address 2, orders 2, order items 3, logins 2, card 1, sms 1


@pytest.fixture
def deleting(config_folder):
    config_folder.write("policies/delete.yml", DELETE_POLICY)
    return config_folder


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_a_delete_policy_deletes_the_subjects_rows_children_first(deleting, run_request, shop_db: Path,
                                                                  storage: Path, smtp) -> None:
    dag, dag_run, states = run_request(POLICY, JANE)
    assert dag_run.state == "success", states
    customer = dag.get_task("erasure.demo_shop.customer")
    assert customer.upstream_task_ids == {"erasure.demo_shop.orders", "erasure.demo_shop.login",
                                          "erasure.demo_shop.payment_card", "erasure.daycare_vendor.daycare_customer"}
    assert dag.get_task("erasure.demo_shop.orders").upstream_task_ids == {"erasure.demo_shop.order_item"}

    assert [r[0] for r in table(shop_db, "customer")] == [2, 3]
    assert [r[0] for r in table(shop_db, "orders")] == [12]
    assert [r[:2] for r in table(shop_db, "order_item")] == [(12, 1)]
    assert [r[0] for r in table(shop_db, "address")] == [2, 4]
    assert [r[0] for r in table(shop_db, "payment_card")] == [201]

    report = read(storage / "req-1" / "report.json")
    assert (report["rows_deleted"], report["rows_masked"], report["rows_found"]) == (JANES_ROWS, 0, JANES_ROWS)
    items = next(c for c in report["collections"] if c["collection"] == "demo_shop:order_item")
    assert items["erasure"]["deleted"] == 3 and items["erasure"]["verified"] == 3
    (email,) = smtp.received  # the vendor is asked to delete the records too
    assert "Delete these records entirely" in email.part("text/plain")
    assert "Delete these records entirely" in email.part("text/html")
    certificate = (storage / "req-1" / "certificate.html").read_text()
    assert "Rows deleted" in certificate and f"rows deleted: {JANES_ROWS}" in certificate

    before = {t: table(shop_db, t) for t in ("customer", "orders", "login")}
    dag, dag_run, states = run_request(POLICY, JANE, request_id="req-2")  # Jane again: nothing left to delete
    assert dag_run.state == "success", states
    assert read(storage / "req-2" / "report.json")["rows_deleted"] == 0
    assert {t: table(shop_db, t) for t in before} == before


def test_a_dry_run_plans_the_deletes_and_deletes_nothing(deleting, airflow_db, shop_db: Path, storage: Path,
                                                         smtp) -> None:
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.model.loading import load_config

    before = {t: table(shop_db, t) for t in ("customer", "orders", "order_item", "login")}
    dag = build_privacy_request_dag(load_config(deleting.path))
    dag_run = dag.test(run_conf={"policy": POLICY, "identity": JANE, "request_id": "dry-1", "dry_run": True})
    assert dag_run.state == "success", task_states(dag, dag_run.run_id)
    report = read(storage / "dry-1" / "report.json")
    assert (report["rows_planned"], report["rows_deleted"]) == (JANES_ROWS, 0)
    customer = next(c for c in report["collections"] if c["collection"] == "demo_shop:customer")
    assert customer["erasure"]["plan"] == {"rows": 1, "action": "delete", "fields": {}, "skipped": {}}
    assert {t: table(shop_db, t) for t in before} == before
    assert smtp.received == []


def test_a_batch_deletes_every_subjects_rows_once(deleting, airflow_db, shop_db: Path, storage: Path, smtp) -> None:
    from include.privacy_requests.airflow.dag_factory import build_batch_dag
    from include.privacy_requests.model.loading import load_config

    dag = build_batch_dag(load_config(deleting.path))
    dag_run = dag.test(run_conf={"batch_id": "b-del", "policy": POLICY, "subjects": [
        {"request_id": "r-jane", "identity": JANE},
        {"request_id": "r-john", "identity": {"email": "john@example.com"}}]})
    assert dag_run.state == "success", task_states(dag, dag_run.run_id)
    assert [r[0] for r in table(shop_db, "customer")] == [3]  # Ada stays
    assert table(shop_db, "orders") == [] and table(shop_db, "login") == []
    batch = read(storage / "batches" / "b-del" / "report.json")
    assert (batch["rows_deleted"], batch["rows_masked"]) == (JANES_ROWS + 6, 0)
    assert {s["request_id"]: s["rows_deleted"] for s in batch["subjects"]} == {"r-jane": JANES_ROWS, "r-john": 6}
    jane = read(storage / "r-jane" / "report.json")
    assert jane["rows_deleted"] == JANES_ROWS
    customer = next(c for c in jane["collections"] if c["collection"] == "demo_shop:customer")
    assert customer["erasure"]["deleted"] == 1
