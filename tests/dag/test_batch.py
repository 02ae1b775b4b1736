"""The privacy_request_batch DAG on the demo, in-process (dag.test): bad subjects rejected alone, every
subject's report and package in the single-request format, one vendor email for the batch, and a failed
collection task cleared and resumed for the whole batch."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.dag_runs import clear, resume, table, task_states

POLICY = "access_and_erasure_policy"  # access package, names nulled, a vendor email
SEND = "erasure_email_send.daycare_vendor"
SUBJECTS = [
    {"request_id": "r-jane", "identity": {"email": "jane@example.com"}},
    {"request_id": "r-john", "identity": {"email": "john@example.com"}},
    {"request_id": "r-bad", "identity": {"email": "not-an-email"}},
    {"request_id": "taken", "identity": {"email": "ada@example.com"}},
]


@pytest.fixture
def run_batch(airflow_db: None, config_folder, storage: Path):
    from include.privacy_requests.airflow.dag_factory import build_batch_dag
    from include.privacy_requests.model.loading import load_config

    def run(conf: dict):
        dag = build_batch_dag(load_config(config_folder.path))
        dag_run = dag.test(run_conf=conf)
        return dag, dag_run, task_states(dag, dag_run.run_id)

    return run


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_batch_rejects_bad_subjects_alone_and_reports_every_subject(run_request, run_batch, shop_db: Path,
                                                                   storage: Path, smtp) -> None:
    # John moves in with Jane: address 1 is reached from both subjects.
    with sqlite3.connect(shop_db) as con:
        con.execute("UPDATE customer SET address_id = 1 WHERE id = 2")
    run_request("default_access_policy", {"email": "ada@example.com"}, request_id="taken")
    taken_before = (storage / "taken" / "report.json").read_text()
    smtp.received.clear()

    _, dag_run, states = run_batch({"batch_id": "b-1", "policy": POLICY, "subjects": SUBJECTS})

    assert dag_run.state == "success", states
    jane, john = read(storage / "r-jane" / "report.json"), read(storage / "r-john" / "report.json")
    assert jane["status"] == john["status"] == "complete"
    assert jane["policy"] == POLICY and jane["identity_types"] == ["email"]
    by_collection = {c["collection"]: c for c in jane["collections"]}
    assert by_collection["demo_shop:customer"]["access"]["rows"] == 1
    assert by_collection["demo_shop:orders"]["access"]["rows"] == 2
    assert by_collection["demo_shop:customer"]["erasure"]["masked"] == 1

    jane_pkg = read(storage / "r-jane" / "access_package.json")
    john_pkg = read(storage / "r-john" / "access_package.json")
    assert [c["email"] for c in jane_pkg["demo_shop:customer"]] == ["jane@example.com"]
    assert [c["email"] for c in john_pkg["demo_shop:customer"]] == ["john@example.com"]
    assert "demo_shop:orders" not in john_pkg or all(o["customer_id"] == 2 for o in john_pkg["demo_shop:orders"])
    # The shared address belongs to both subjects.
    assert {a["street"] for a in jane_pkg["demo_shop:address"]} == {"1 Main Street", "3 Ocean Drive"}
    assert {a["street"] for a in john_pkg["demo_shop:address"]} == {"1 Main Street", "2 Side Road"}

    bad = read(storage / "r-bad" / "report.json")
    assert bad["status"] == "rejected" and "identity.email" in bad["review"]["reason"]
    assert not (storage / "r-bad" / "access_package.json").exists()
    assert (storage / "taken" / "report.json").read_text() == taken_before  # another request's: untouched

    # Names nulled for Jane and John only; Ada (the rejected subject's identity) untouched.
    names = {row[0]: row[2] for row in table(shop_db, "customer")}
    assert names == {1: None, 2: None, 3: "Ada Poe"}

    batch = read(storage / "batches" / "b-1" / "report.json")
    assert batch["status"] == "complete"
    assert batch["subjects_accepted"] == 2 and batch["subjects_rejected"] == 2
    assert {r["request_id"]: r["reason"] for r in batch["rejected"]}["taken"].startswith("request id already used")
    assert [s["request_id"] for s in batch["subjects"]] == ["r-jane", "r-john"]
    customer = next(c for c in batch["collections"] if c["collection"] == "demo_shop:customer")
    assert customer["access"]["rows"] == 2 and customer["access"]["statements"] == 1
    assert customer["erasure"]["masked"] == 2

    assert len(smtp.received) == 1  # one email for the whole batch
    mail = smtp.received[0]
    assert "b-1" in mail.message["Subject"]
    text = mail.part("text/plain")
    assert "r-jane" in text and "r-john" in text and "r-bad" not in text and "taken" not in text
    for report in (jane, john):
        sent = [e for e in report["events"] if e["event"] == "email_sent"]
        assert [e["message_id"] for e in sent] == [mail.message["Message-ID"]]
    assert jane["emails_sent"] == 1
    # Intermediate rows are gone; the ledger stays.
    assert not [p for p in (storage / "batches" / "b-1").rglob("*") if p.is_file() and "rows" in p.parts]
    assert (storage / "batches" / "b-1" / "ledger" / "email.daycare_vendor.json").exists()
    assert states["erasure.demo_shop.customer"][0] == "success"


def test_batch_without_valid_subject_fails_validate(run_batch, shop_db: Path, storage: Path, smtp) -> None:
    _, dag_run, states = run_batch({"batch_id": "b-2", "policy": POLICY, "subjects": SUBJECTS[2:3]})

    assert dag_run.state == "failed"
    assert states["validate_request"][0] == "failed"
    report = read(storage / "batches" / "b-2" / "report.json")
    assert report["status"] == "failed" and "no valid subject" in report["failed_checkpoint"]["message"]
    assert read(storage / "r-bad" / "report.json")["status"] == "rejected"


def test_failed_collection_task_cleared_resumes_the_whole_batch(run_batch, monkeypatch, shop_db: Path,
                                                                storage: Path, smtp, tmp_path: Path,
                                                                config_folder) -> None:
    subjects_file = tmp_path / "inbox" / "subjects.jsonl"
    subjects_file.parent.mkdir()
    subjects_file.write_text("".join(json.dumps(s) + "\n" for s in SUBJECTS[:2]))
    inbox = [str(subjects_file.parent)]
    config_folder.edit("privacy.yml", lambda d: d.setdefault("batch", {}).update(subjects_from=inbox))
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", "sqlite:////nonexistent-dir/shop.db")
    dag, dag_run, states = run_batch({"batch_id": "b-3", "policy": POLICY,
                                      "subjects_url": f"file://{subjects_file}"})
    assert dag_run.state == "failed"
    assert states["access.demo_shop.customer"][0] == "failed"
    assert read(storage / "r-jane" / "report.json")["status"] == "failed"
    assert read(storage / "batches" / "b-3" / "report.json")["failed_checkpoint"]["checkpoint"] == \
        "access.demo_shop.customer"

    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", f"sqlite:///{shop_db}")
    clear(dag, dag_run.run_id, ["access.demo_shop.customer"])
    assert resume(dag, dag_run.run_id) == "success"
    after = task_states(dag, dag_run.run_id)
    assert after["validate_request"] == states["validate_request"]  # not rerun
    assert after["access.demo_shop.customer"] == ("success", 2)
    for request_id in ("r-jane", "r-john"):
        assert read(storage / request_id / "report.json")["status"] == "complete"
    assert {row[0]: row[2] for row in table(shop_db, "customer")} == {1: None, 2: None, 3: "Ada Poe"}
    assert len(smtp.received) == 1

    # Clearing erasure and the email again repeats neither: the ledger answers.
    clear(dag, dag_run.run_id, ["erasure.demo_shop.customer", SEND])
    with sqlite3.connect(shop_db) as con:
        con.execute("UPDATE customer SET name = 'Restored' WHERE id = 1")
    assert resume(dag, dag_run.run_id) == "success"
    assert len(smtp.received) == 1
    assert {row[0]: row[2] for row in table(shop_db, "customer")}[1] == "Restored"
