"""A failure at each kind of checkpoint, fixed and resumed by clearing: the run ends as one without the
fault would, upstream work is reused, and no side effect happens twice."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.dag_runs import clear, own_request, resume, table, task_states

JANE = {"email": "jane@example.com"}
POLICY = "access_and_erasure_policy"  # null_rewrite only, so every run's final state is the same
TABLES = ("customer", "address", "orders", "order_item", "login", "payment_card", "sms_subscription")


def final_state(db: Path, request_dir: Path) -> dict:
    package = json.loads((request_dir / "access_package.json").read_text())
    return {"tables": {t: table(db, t) for t in TABLES}, "package": package}


@pytest.fixture(scope="module")
def clean_run(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The final state of the request without any fault, on a shop, store and SMTP server of its own: made once
    for the module (the policy only nulls, so every clean run of it ends the same)."""
    run = own_request(tmp_path_factory.mktemp("clean-run"), POLICY, JANE, request_id="reference")
    assert run.dag_run.state == "success"
    return final_state(run.shop, run.storage / "reference")


@pytest.fixture
def reference(clean_run: dict, smtp):
    """The clean run's final state, and how to read a run's (the test's own runs send through ``smtp``)."""
    return clean_run, final_state


def assert_resumed(dag, run_id: str, failed: str, states_before: dict, reference, shop_db: Path,
                   storage: Path) -> dict:
    expected, final_state = reference
    assert resume(dag, run_id) == "success"
    after = task_states(dag, run_id)
    assert after[failed][0] == "success" and after[failed][1] == states_before[failed][1] + 1
    for task, (state, try_number) in states_before.items():
        if state in ("success", "skipped"):
            assert after[task] == (state, try_number), f"{task} was rerun"
    assert final_state(shop_db, storage / "req-1") == expected
    return after


def test_access_collection_with_database_down(run_request, monkeypatch, reference, shop_db: Path,
                                              storage: Path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", "sqlite:////nonexistent-dir/shop.db")
    dag, dag_run, states = run_request(POLICY, JANE)
    assert dag_run.state == "failed"
    assert states["access.demo_shop.customer"] == ("failed", 1)
    assert states["erasure.demo_shop.customer"][0] == "upstream_failed"

    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", f"sqlite:///{shop_db}")
    cleared = clear(dag, dag_run.run_id, ["access.demo_shop.customer"])
    assert "access.demo_shop.address" in cleared and "validate_request" not in cleared
    assert_resumed(dag, dag_run.run_id, "access.demo_shop.customer", states, reference, shop_db, storage)


def test_erasure_collection_refused_by_the_database(run_request, reference, shop_db: Path,
                                                   storage: Path) -> None:
    with sqlite3.connect(shop_db) as con:
        con.execute("CREATE TRIGGER no_updates BEFORE UPDATE ON customer BEGIN SELECT RAISE(ABORT, 'locked'); END")
    dag, dag_run, states = run_request(POLICY, JANE)
    assert dag_run.state == "failed"
    assert states["erasure.demo_shop.customer"] == ("failed", 1)
    assert states["erasure.demo_shop.payment_card"][0] == "success"  # other collections went on

    with sqlite3.connect(shop_db) as con:
        con.execute("DROP TRIGGER no_updates")
    assert clear(dag, dag_run.run_id, ["erasure.demo_shop.customer"]) == sorted(
        ["erasure.demo_shop.customer", "erasure_email_send.daycare_vendor", "post_webhooks", "finalize"])
    after = assert_resumed(dag, dag_run.run_id, "erasure.demo_shop.customer", states, reference, shop_db, storage)
    assert after["erasure.demo_shop.payment_card"] == ("success", 1)


def test_finalize_unable_to_write_the_report(run_request, reference, shop_db: Path, storage: Path) -> None:
    (storage / "req-1" / "report.json").mkdir(parents=True)  # something in the way of the report
    dag, dag_run, states = run_request(POLICY, JANE)
    assert dag_run.state == "failed"
    assert states["finalize"] == ("failed", 1)

    (storage / "req-1" / "report.json").rmdir()
    assert clear(dag, dag_run.run_id, ["finalize"]) == ["finalize"]
    assert_resumed(dag, dag_run.run_id, "finalize", states, reference, shop_db, storage)
    report = json.loads((storage / "req-1" / "report.json").read_text())
    assert report["rows_masked"] == 2  # customer.name and payment_card.name_on_card


def test_clearing_a_finished_run_repeats_no_masking(run_request, shop_db: Path, storage: Path, smtp) -> None:
    dag, dag_run, _ = run_request("default_erasure_policy", JANE)
    once = {t: table(shop_db, t) for t in TABLES}
    package_before = sorted((storage / "req-1").iterdir())

    clear(dag, dag_run.run_id, ["validate_request"])
    assert resume(dag, dag_run.run_id) == "success"
    assert {t: table(shop_db, t) for t in TABLES} == once  # hash not applied to the hash
    assert len(smtp.received) == 1
    assert sorted((storage / "req-1").iterdir()) == package_before
    report = json.loads((storage / "req-1" / "report.json").read_text())
    masked = [e for e in report["events"] if e["event"] == "collection_masked"]
    assert len(masked) == 4 and {e["try_number"] for e in masked} == {1}


def test_transient_errors_are_retried_and_input_errors_are_not(run_request, config_folder, monkeypatch,
                                                                shop_db: Path, storage: Path, smtp) -> None:
    config_folder.edit("privacy.yml", lambda d: d.update(retries={"count": 1, "delay_seconds": 0.1}))
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", "sqlite:////nonexistent-dir/shop.db")
    _, _, states = run_request(POLICY, JANE, request_id="down")
    assert states["access.demo_shop.customer"] == ("failed", 2)  # database unreachable: retried once

    monkeypatch.delenv("AIRFLOW_CONN_DEMO_SHOP_DB")
    _, _, states = run_request(POLICY, JANE, request_id="missing")
    # No such connection: no retry. The erasure preflight meets it in validate_request, before anything is read.
    assert states["validate_request"] == ("failed", 1)


def test_a_whole_run_clear_after_partial_erasure_still_erases_everything(run_request, shop_db: Path,
                                                                          storage: Path, smtp) -> None:
    """Access must not re-query data already masked: that would shrink what is left to erase."""
    with sqlite3.connect(shop_db) as con:
        con.execute("CREATE TRIGGER no_updates BEFORE UPDATE ON sms_subscription "
                    "BEGIN SELECT RAISE(ABORT, 'locked'); END")
    dag, dag_run, states = run_request("default_erasure_policy", JANE)
    assert states["erasure.demo_shop.sms_subscription"][0] == "failed"
    assert states["erasure.demo_shop.customer"][0] == "success"  # Jane's phone is hashed already

    with sqlite3.connect(shop_db) as con:
        con.execute("DROP TRIGGER no_updates")
    clear(dag, dag_run.run_id, ["validate_request"])
    assert resume(dag, dag_run.run_id) == "success"
    jane_phone = table(shop_db, "customer")[0][3]
    assert table(shop_db, "sms_subscription")[0][1] == jane_phone  # masked, with the same hash


def test_clearing_one_erasure_task_after_finalize(run_request, shop_db: Path, storage: Path, smtp) -> None:
    """Masking is reported from the ledger; a vendor instruction whose inputs are gone asks for the access
    task to be cleared instead of sending an empty instruction."""
    dag, dag_run, _ = run_request("default_erasure_policy", JANE)
    with sqlite3.connect(shop_db) as con:
        con.execute("UPDATE customer SET name = 'Jane Again' WHERE id = 1")
    clear(dag, dag_run.run_id, ["erasure.demo_shop.customer"])
    assert resume(dag, dag_run.run_id) == "success"
    assert table(shop_db, "customer")[0][2] == "Jane Again"  # recorded in the ledger: not masked again

    clear(dag, dag_run.run_id, ["erasure.daycare_vendor.daycare_customer"])
    assert resume(dag, dag_run.run_id) == "failed"
    report = json.loads((storage / "req-1" / "report.json").read_text())
    assert "clear access.demo_shop.customer" in report["failed_checkpoint"]["message"]

    clear(dag, dag_run.run_id, ["access.demo_shop.customer"])
    assert resume(dag, dag_run.run_id) == "success"
    assert len(smtp.received) == 1  # the email was sent once, by the first run


def test_a_failed_request_has_a_report_naming_the_checkpoint(run_request, shop_db: Path, storage: Path,
                                                             smtp) -> None:
    (storage / "req-1").mkdir(parents=True)
    smtp.stop()
    _, dag_run, _ = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "failed"
    report = json.loads((storage / "req-1" / "report.json").read_text())
    assert report["status"] == "failed"
    assert report["failed_checkpoint"]["checkpoint"] == "erasure_email_send.daycare_vendor"
    assert report["failed_checkpoint"]["error"] == "TransientError"
    assert report["rows_masked"] == 5
