"""Vendor digests in-process (dag.test) against a real SMTP server on 127.0.0.1: two requests wait for the
digest, the privacy_vendor_digest DAG sends the vendor one email listing both, exactly once, across a failed
send and a clear, and the requests' reports go from 'awaiting vendor digest' to sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.dag_runs import clear, resume, task_states

VENDOR = "daycare_vendor"
SEND = f"erasure_email_send.{VENDOR}"


@pytest.fixture
def digest_vendor(config_folder, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo vendor on a weekly digest; the DAG files read this folder too (dag.test serializes the DAG
    from dags/, where privacy_vendor_digest exists only when some vendor has a digest)."""
    config_folder.edit("privacy.yml", lambda d: d["datasets"][VENDOR]["email"].update(digest="@weekly"))
    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))


def report(storage: Path, request_id: str) -> dict[str, Any]:
    return json.loads((storage / request_id / "report.json").read_text())


def digest_dag(config_folder):
    from include.privacy_requests.airflow.dag_factory import build_vendor_digest_dag
    from include.privacy_requests.model.loading import load_config

    return build_vendor_digest_dag(load_config(config_folder.path))


def test_two_waiting_requests_one_digest_then_nothing(digest_vendor, run_request, config_folder, shop_db: Path,
                                                      storage: Path, smtp) -> None:
    for request_id, email in (("req-jane", "jane@example.com"), ("req-john", "john@example.com")):
        _, dag_run, states = run_request("default_erasure_policy", {"email": email}, request_id)
        assert dag_run.state == "success" and states[SEND][0] == "success"
        body = report(storage, request_id)
        assert body["status"] == "awaiting vendor digest"
        assert [(v["dataset"], v["status"]) for v in body["vendor_emails"]] == [(VENDOR, "awaiting vendor digest")]
    assert smtp.received == []  # the requests sent nothing themselves

    dag = digest_dag(config_folder)
    assert [t.task_id for t in dag.tasks] == [VENDOR]
    assert dag.tasks[0].template_fields == ("dataset",)
    first = dag.test()

    assert task_states(dag, first.run_id)[VENDOR][0] == "success"
    assert len(smtp.received) == 1
    mail = smtp.received[0]
    assert mail.envelope_to == ["privacy@daycare-vendor.example"]
    for part in (mail.part("text/plain"), mail.part("text/html")):
        assert "req-jane" in part and "req-john" in part and "jane@example.com" in part
        assert "john@example.com" in part
    for request_id in ("req-jane", "req-john"):
        body = report(storage, request_id)
        assert body["status"] == "complete" and body["emails_sent"] == 1
        assert body["vendor_emails"][0]["status"] == "sent"
        told = [e for e in body["events"] if e["event"] == "email_sent"]
        assert [e["message_id"] for e in told] == [mail.message["Message-ID"]]

    second = dag.test()
    assert task_states(dag, second.run_id)[VENDOR][0] == "skipped"
    assert len(smtp.received) == 1


def test_a_failed_digest_send_then_a_clear_sends_once(digest_vendor, run_request, config_folder, shop_db: Path,
                                                      storage: Path, smtp) -> None:
    run_request("default_erasure_policy", {"email": "jane@example.com"}, "req-jane")
    dag = digest_dag(config_folder)
    smtp.stop()
    failed = dag.test()
    assert task_states(dag, failed.run_id)[VENDOR][0] == "failed"
    assert report(storage, "req-jane")["status"] == "awaiting vendor digest"

    smtp.start()
    assert clear(dag, failed.run_id, [VENDOR]) == [VENDOR]
    assert resume(dag, failed.run_id) == "success"
    clear(dag, failed.run_id, [VENDOR])  # a second clear after the send repeats nothing
    assert resume(dag, failed.run_id) == "success"

    assert len(smtp.received) == 1 and "req-jane" in smtp.received[0].part("text/plain")
    body = report(storage, "req-jane")
    assert body["status"] == "complete"
    assert [e["message_id"] for e in body["events"] if e["event"] == "email_sent"] == [
        smtp.received[0].message["Message-ID"]]


def test_an_extension_over_rest_rewrites_the_report_and_its_certificate(digest_vendor, run_request, shop_db: Path,
                                                                         storage: Path, smtp,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A request waiting for its vendor's digest has a report and a certificate; an extension granted through
    the api-server's route writes both again: the new due date, and the SHA-256 of the report as it is now."""
    import hashlib
    import re
    import secrets

    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    _, dag_run, _ = run_request("default_erasure_policy", {"email": "jane@example.com"}, "req-ext")
    folder = storage / "req-ext"
    due = re.search(r"<tr><th>Due</th><td>(.*?)</td>", (folder / "certificate.html").read_text())
    assert due and report(storage, "req-ext")["status"] == "awaiting vendor digest"

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
    with TestClient(create_app()) as api:
        answer = api.put(f"/privacy-deadlines/requests/{dag_run.run_id}", json={"reason": "busy", "months": 1})
    assert answer.status_code == 200, answer.text

    text = (folder / "report.json").read_text()
    assert [e["event"] for e in json.loads(text)["events"]].count("deadline_extended") == 1
    certificate = (folder / "certificate.html").read_text()
    assert f'<code id="report-sha256">{hashlib.sha256(text.encode()).hexdigest()}</code>' in certificate
    assert f"<tr><th>Due</th><td>{answer.json()['due']}</td>" in certificate and answer.json()["due"] != due[1]
