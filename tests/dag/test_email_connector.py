"""The email connector against a real SMTP server on 127.0.0.1: instructions, one email per vendor, no
email when there is nothing to send, exactly once across failures and clears."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.dag_runs import clear, resume, task_states

JANE = {"email": "jane@example.com"}
SEND = "erasure_email_send.daycare_vendor"


def test_vendor_email_lists_every_collection_in_both_parts(run_request, shop_db: Path, storage: Path,
                                                           smtp) -> None:
    _, dag_run, states = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "success"
    assert states[SEND][0] == "success"
    assert len(smtp.received) == 1
    mail = smtp.received[0]
    assert mail.envelope_to == ["privacy@daycare-vendor.example"]
    assert mail.message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.message.get_payload()] == ["text/plain", "text/html"]
    assert "Example Corp" in mail.message["Subject"]
    for body in (mail.part("text/plain"), mail.part("text/html")):
        assert "Example Corp" in body and "req-1" in body
        # daycare_customer: located by our customer id (1), its scholarship to erase.
        assert "customer_id" in body and "Values: 1" in body and "scholarship" in body
        # children: located through the vendor's own daycare_customer.id, nested fields by dotted path.
        assert "daycare_vendor:daycare_customer:id" in body
        assert "report_card.grades" in body and "report_card.behavior_issues" in body
        # payment: located by the email identity, nothing to erase.
        assert "jane@example.com" in body
        assert "No erasures needed on this collection" in body
    report = json.loads((storage / "req-1" / "report.json").read_text())
    sent = [e for e in report["events"] if e["event"] == "email_sent"]
    assert len(sent) == 1
    assert sent[0]["message_id"] == mail.message["Message-ID"]
    assert sent[0]["recipients"] == ["privacy@daycare-vendor.example"]
    assert sent[0]["dataset"] == "daycare_vendor"


def test_read_only_vendor_gets_no_email(run_request, config_folder, shop_db: Path, smtp) -> None:
    config_folder.edit("privacy.yml", lambda d: d["datasets"]["daycare_vendor"].update(access="read"))
    _, dag_run, states = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "success"
    assert states[SEND][0] == "skipped"
    assert smtp.received == []


def test_nothing_to_erase_sends_no_email(run_request, config_folder, shop_db: Path, smtp) -> None:
    """A policy that erases card numbers only: the vendor holds none, so it has nothing to erase."""
    config_folder.write("policies/cards.yml", {"policy": [{
        "key": "erase_cards_only",
        "rules": [{"key": "cards", "action": "erasure", "targets": ["user.financial"],
                   "masking_strategy": {"strategy": "null_rewrite"}}],
    }]})
    _, dag_run, states = run_request("erase_cards_only", JANE)

    assert dag_run.state == "success"
    assert states["erasure.daycare_vendor.children"][0] == "success"
    assert states[SEND][0] == "skipped"
    assert smtp.received == []


def test_each_vendor_decides_on_its_own(run_request, config_folder, shop_db: Path, smtp) -> None:
    """A first vendor with nothing to erase must not stop the second vendor's email (a fidesops bug)."""
    config_folder.write("datasets/aaa_vendor.yml", {"dataset": [{
        "fides_key": "aaa_vendor",
        "collections": [{"name": "newsletter", "fields": [
            {"name": "email", "data_categories": ["user.contact.email"], "fides_meta": {"identity": "email"}},
            {"name": "segment", "data_categories": ["system.operations"]},
        ]}],
    }]})
    config_folder.edit("privacy.yml", lambda d: d["datasets"].update(
        aaa_vendor={"email": {"to": "privacy@aaa.example"}, "access": "write"}))
    _, dag_run, states = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "success"
    assert states["erasure_email_send.aaa_vendor"][0] == "skipped"
    assert states[SEND][0] == "success"
    assert [m.envelope_to for m in smtp.received] == [["privacy@daycare-vendor.example"]]


def test_hostile_locator_values_are_escaped_in_html(run_request, config_folder, shop_db: Path, smtp) -> None:
    config_folder.edit("datasets/daycare_vendor.yml", _add_phone_locator)
    hostile = "<script>alert(1)</script>"
    _, dag_run, _ = run_request("default_erasure_policy", {**JANE, "phone_number": hostile})

    assert dag_run.state == "success"
    html = smtp.received[0].part("text/html")
    assert hostile not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert hostile in smtp.received[0].part("text/plain")


def _add_phone_locator(data: dict) -> None:
    payment = next(c for c in data["dataset"][0]["collections"] if c["name"] == "payment")
    payment["fields"].append({"name": "payer_phone", "data_categories": ["user.contact.phone_number"],
                              "fides_meta": {"identity": "phone_number"}})


def test_smtp_down_fails_then_a_clear_sends_exactly_once(run_request, shop_db: Path, storage: Path,
                                                         smtp) -> None:
    smtp.stop()
    dag, dag_run, states = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "failed"
    assert states[SEND] == ("failed", 1)
    assert states["finalize"][0] == "upstream_failed"
    masked_once = _customer_row(shop_db)

    smtp.start()
    assert clear(dag, dag_run.run_id, [SEND]) == [SEND, "finalize", "post_webhooks"]
    assert resume(dag, dag_run.run_id) == "success"
    after = task_states(dag, dag_run.run_id)
    assert after[SEND] == ("success", 2)
    assert after["erasure.demo_shop.customer"] == ("success", 1)  # upstream kept, not rerun
    assert len(smtp.received) == 1
    assert _customer_row(shop_db) == masked_once

    # A second clear, of the whole run this time, repeats no side effect.
    clear(dag, dag_run.run_id, ["validate_request"])
    assert resume(dag, dag_run.run_id) == "success"
    assert len(smtp.received) == 1
    assert _customer_row(shop_db) == masked_once
    report = json.loads((storage / "req-1" / "report.json").read_text())
    sent = [e for e in report["events"] if e["event"] == "email_sent"]
    assert [(e["message_id"], e["try_number"]) for e in sent] == [(smtp.received[0].message["Message-ID"], 2)]
    failures = [e for e in report["events"] if e["event"] == "checkpoint_failed"]
    assert [f["checkpoint"] for f in failures] == [SEND]


def _customer_row(db: Path) -> tuple:
    from tests.support.dag_runs import table

    return table(db, "customer")[0]


def test_vendor_test_email_goes_to_the_test_recipient(airflow_db, config_folder, smtp) -> None:
    from include.privacy_requests.airflow.dag_factory import build_vendor_test_email_dag
    from include.privacy_requests.model.loading import load_config

    dag = build_vendor_test_email_dag(load_config(config_folder.path))
    dag_run = dag.test(run_conf={"dataset": "daycare_vendor"})

    assert dag_run.state == "success"
    assert [m.envelope_to for m in smtp.received] == [["dpo@example.com"]]
    mail = smtp.received[0]
    assert mail.message["Subject"].startswith("[TEST]")
    assert "test_collection" in mail.part("text/html") and "example_id" in mail.part("text/plain")


def test_missing_smtp_connection_fails_validation_before_anything_is_touched(run_request, monkeypatch,
                                                                            shop_db: Path, storage: Path) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    before = _customer_row(shop_db)
    _, dag_run, states = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "failed"
    assert states["validate_request"] == ("failed", 1)
    assert _customer_row(shop_db) == before
    assert "SMTP connection 'smtp_default'" in _failure_message(storage)


def test_no_sender_address_fails_validation(run_request, monkeypatch, shop_db: Path, storage: Path,
                                            smtp) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", f"smtp://127.0.0.1:{smtp.port}?disable_tls=true&disable_ssl=true")
    _, dag_run, _ = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "failed"
    assert "email_from" in _failure_message(storage)
    assert smtp.received == []


def _failure_message(storage: Path) -> str:
    """The recorded checkpoint_failed event (the store is encrypted with the test key)."""
    import os

    from include.privacy_requests.store.store import RequestStore

    store = RequestStore(storage, "req-1", os.environ["AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY"])
    failures = [e for e in store.events() if e["event"] == "checkpoint_failed"]
    assert len(failures) == 1
    return failures[0]["message"]


def test_no_email_when_the_vendor_could_not_locate_anything(run_request, shop_db: Path, smtp) -> None:
    """Someone we hold nothing about: no customer id to give, so daycare records cannot be located."""
    _, dag_run, states = run_request("default_erasure_policy", {"email": "nobody@example.com"})

    assert dag_run.state == "success"
    assert states[SEND][0] == "skipped"
    assert smtp.received == []
