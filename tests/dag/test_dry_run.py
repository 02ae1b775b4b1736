"""Dry run on the demo configuration with dag.test(): the plan is recorded, the vendor email rendered and
kept, and nothing changes anywhere; a real run may then follow it, and finalize writes the certificate."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from include.privacy_requests.steps.erasure_plan import compare
from include.privacy_requests.store import layout
from include.privacy_requests.store.store import RequestStore

JANE = {"email": "jane@example.com"}
ERASURE = "default_erasure_policy"


@pytest.fixture
def run(airflow_db: None, config_folder, storage: Path):
    """Run one request with any conf; returns the run and its report (None when none was written)."""
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.model.loading import load_config

    def run(request_id: str, **conf: Any):
        dag = build_privacy_request_dag(load_config(config_folder.path))
        dag_run = dag.test(run_conf={"policy": ERASURE, "identity": JANE, "request_id": request_id, **conf})
        report = storage / request_id / "report.json"
        return dag_run, json.loads(report.read_text()) if report.exists() else None

    return run


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch, config_folder) -> Iterator[Any]:
    """Airflow's api-server app in-process with the plugin's pages (every caller an admin)."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
    with TestClient(create_app()) as client:
        yield client


def checksums(db: Path) -> dict[str, str]:
    """A SHA-256 of every table's rows, in primary-key order."""
    with sqlite3.connect(db) as con:
        names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: hashlib.sha256(repr(con.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall()).encode()).hexdigest()
                for n in names}


def store(storage: Path, request_id: str) -> RequestStore:
    return RequestStore(storage, request_id, os.environ["AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY"])


def test_a_dry_run_records_the_plan_renders_the_email_and_changes_nothing(run, pages, shop_db: Path,
                                                                         storage: Path, smtp) -> None:
    before = checksums(shop_db)
    dag_run, report = run("dry-1", dry_run=True)

    assert dag_run.state == "success"
    assert checksums(shop_db) == before and len(before) >= 7
    assert smtp.received == []
    assert report["dry_run"] is True and report["rows_masked"] == 0 and report["emails_sent"] == 0
    plans = {c["collection"]: c["erasure"] for c in report["collections"]}
    customer = plans["demo_shop:customer"]
    assert customer["status"] == "planned"
    assert customer["plan"]["rows"] == 1
    assert customer["plan"]["fields"]["name"] == {"strategy": "null_rewrite", "values_to_change": 1}
    assert customer["plan"]["fields"]["phone"] == {"strategy": "hash", "values_to_change": 1}
    assert plans["demo_shop:address"]["plan"]["rows"] == 2
    # The same rows the real erasure masks (test_privacy_request: 5).
    assert report["rows_planned"] == 5 and report["emails_rendered"] == 1
    # Rendered and kept, never sent: no sending marker and no ledger entry.
    dry = store(storage, "dry-1")
    email = dry.get(layout.dry_run_email("daycare_vendor"))
    assert "Data erasure request" in email["subject"] and "jane@example.com" in email["html"]
    assert not dry.exists(layout.email_sent("daycare_vendor"))
    assert not dry.exists(layout.email_sending("daycare_vendor"))
    assert not [n for n in dry.list(layout.LEDGER) if layout.is_erasure_ledger(n)]
    assert not (storage / "dry-1" / layout.CERTIFICATE).exists()  # nothing was erased: nothing to certify

    page = pages.get(f"/privacy/requests/{dag_run.run_id}")
    assert page.status_code == 200
    assert "Dry run:" in page.text and 'id="plan"' in page.text and 'id="certificate"' not in page.text
    assert "<td><code>phone</code></td>\n    <td>hash</td><td>1</td>" in page.text
    assert "rendered at" in page.text and "not sent" in page.text
    rendered = pages.get(f"/privacy/requests/{dag_run.run_id}/emails/daycare_vendor")
    assert rendered.status_code == 200 and rendered.text == email["html"]
    assert rendered.headers["Content-Security-Policy"] == "sandbox"
    assert pages.get(f"/privacy/requests/{dag_run.run_id}/certificate").status_code == 404


def test_a_real_run_follows_its_dry_run_and_is_certified(run, pages, shop_db: Path, storage: Path, smtp) -> None:
    _, plan = run("dry-2", dry_run=True)

    # The dry run's id is taken: a real run cannot reuse it, and changes nothing.
    before = checksums(shop_db)
    reused, _ = run("dry-2")
    assert reused.state == "failed"
    assert checksums(shop_db) == before and smtp.received == []

    dag_run, report = run("real-2", after_dry_run="dry-2")
    assert dag_run.state == "success"
    assert report["after_dry_run"] == "dry-2" and report["dry_run"] is False and report["rows_masked"] == 5
    changes = compare(plan, report)
    assert {c["collection"]: (c["planned"], c["masked"]) for c in changes}["demo_shop:address"] == (2, 2)
    assert all(c["same"] for c in changes)
    verified = [e for e in report["events"] if e["event"] == "erasure_verified"]
    masked = {c["collection"]: c["erasure"]["masked"] for c in report["collections"] if c["erasure"].get("masked")}
    assert {e["collection"]: e["rows"] for e in verified} == masked

    certificate = (storage / "real-2" / layout.CERTIFICATE).read_text()
    digest = hashlib.sha256((storage / "real-2" / "report.json").read_bytes()).hexdigest()
    assert f'<code id="report-sha256">{digest}</code>' in certificate
    (sent,) = smtp.received
    assert sent.message["Message-ID"].strip("<>") in certificate
    assert "privacy@daycare-vendor.example" in certificate and "jane@example.com" not in certificate
    assert 'class="met"' in certificate

    page = pages.get(f"/privacy/requests/{dag_run.run_id}").text
    assert 'id="changes"' in page and "<code>dry-2</code>" in page and "Dry run:" not in page
    assert "<td><code>demo_shop:address</code></td><td>2</td>\n    <td>2</td><td>no</td>" in page
    served = pages.get(f"/privacy/requests/{dag_run.run_id}/certificate")
    assert served.status_code == 200 and served.text == certificate
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert f'href="./{quote(dag_run.run_id)}/certificate"' in page


EVERYTHING = {
    "key": "everything_policy",
    "name": "Every feature at once",
    "access_package": {"formats": ["json", "html", "csv"], "deliver": "email"},
    "webhooks": {
        "pre": [{"name": "notify", "conn_id": "crm_hook", "endpoint": "/pre"},
                {"name": "enrich", "conn_id": "crm_hook", "endpoint": "/enrich", "direction": "two_way"}],
        "post": [{"name": "done", "conn_id": "crm_hook", "endpoint": "/post", "direction": "two_way"}]},
    "rules": [
        {"key": "access_all", "action": "access", "targets": ["user"]},
        {"key": "names", "action": "erasure", "targets": ["user.name", "user.childrens"],
         "masking_strategy": {"strategy": "null_rewrite"}},
        {"key": "phones", "action": "erasure", "targets": ["user.contact.phone_number"],
         "masking_strategy": {"strategy": "hash", "configuration": {"algorithm": "SHA-256"}}},
        {"key": "addresses", "action": "erasure", "targets": ["user.contact.address"],
         "masking_strategy": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "REDACTED"}}},
        {"key": "cards", "action": "erasure", "targets": ["user.financial"],
         "masking_strategy": {"strategy": "null_rewrite"}},
    ],
}


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tests.support.http_remote import Remote

    server = Remote()
    server.answers["/enrich"] = [(200, {"derived_identity": {"phone_number": "+15555550100"}})] * 3
    monkeypatch.setenv("AIRFLOW_CONN_CRM_HOOK", server.url)
    yield server
    server.stop()


def every_feature(config_folder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three vendors (one emailed, one on a digest, one that confirms), webhooks, every masking strategy the
    shop's columns take, and an access package delivered by email, in one policy."""
    vendor = (config_folder.path / "datasets" / "daycare_vendor.yml").read_text()
    for name in ("digest_vendor", "confirm_vendor"):
        (config_folder.path / "datasets" / f"{name}.yml").write_text(vendor.replace("daycare_vendor", name))

    def vendors(data: dict) -> None:
        data["datasets"]["digest_vendor"] = {"email": {"to": "digest@vendor.example", "digest": "@weekly"},
                                             "access": "write"}
        data["datasets"]["confirm_vendor"] = {"email": {"to": "confirm@vendor.example", "confirm": True},
                                              "access": "write"}

    config_folder.edit("privacy.yml", vendors)
    config_folder.write("policies/everything.yml", {"policy": [EVERYTHING]})
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:9/")  # confirm: true needs it; never called
    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with a digest of its bytes."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_dry_run_of_every_feature_at_once_sends_nothing_calls_nothing_changes_nothing(
        run, config_folder, monkeypatch: pytest.MonkeyPatch, shop_db: Path, storage: Path, smtp, remote,
        pages) -> None:
    every_feature(config_folder, monkeypatch)
    storage.mkdir(parents=True)
    (storage / "other-request").mkdir()
    (storage / "other-request" / "report.json").write_text('{"status": "complete"}\n')
    before, files_before = checksums(shop_db), tree(storage)

    dag_run, report = run("dry-all", policy="everything_policy", dry_run=True)

    assert dag_run.state == "success"
    assert smtp.received == []  # not the subject, not a vendor, not a digest, not a reminder
    assert remote.calls == []  # no webhook, before or after
    assert checksums(shop_db) == before and len(before) >= 7
    # Nothing outside the dry run's own folder: no subject claim, no digest queue, no other request touched.
    assert {k: v for k, v in tree(storage).items() if not k.startswith("dry-all/")} == files_before
    dry = store(storage, "dry-all")
    assert not [n for n in dry.list(layout.LEDGER)]  # no ledger: no email, erasure or webhook recorded as done
    assert not (storage / "dry-all" / layout.CERTIFICATE).exists()

    # The plan shows what would happen: rows per strategy, each email rendered, each webhook.
    assert report["dry_run"] is True and report["rows_masked"] == 0 and report["emails_sent"] == 0
    assert report["rows_planned"] == 5 and report["status"] == "complete"
    rendered = {e["dataset"] for e in report["events"] if e["event"] == "email_rendered"}
    assert rendered == {"daycare_vendor", "digest_vendor", "confirm_vendor", layout.PACKAGE_EMAIL}
    planned = [(e["step"], e["webhook"]) for e in report["events"] if e["event"] == "webhook_planned"]
    assert planned == [("pre", "notify"), ("pre", "enrich"), ("post", "done")]
    package = dry.get(layout.dry_run_email(layout.PACKAGE_EMAIL))
    assert package["recipients"] == ["jane@example.com"] and "Example Corp" in package["subject"]
    assert package["attachments"] == [layout.ACCESS_PACKAGE_HTML]
    assert "jane@example.com" not in (storage / "dry-all" / "report.json").read_text()
    confirm = dry.get(layout.dry_run_email("confirm_vendor"))
    assert "/privacy-vendor/confirm" not in confirm["html"]  # no working link in a dry run's email
    # The request page shows the letter the subject would get, marked not sent, without the address.
    page = pages.get(f"/privacy/requests/{dag_run.run_id}").text
    assert "the subject&#39;s email identity" in page and "not sent" in page
    letter = pages.get(f"/privacy/requests/{dag_run.run_id}/emails/{layout.PACKAGE_EMAIL}")
    assert letter.status_code == 200 and letter.text == package["html"]


@pytest.mark.timeout(240)  # before the fix the run waited for a person (dag.test cannot answer)
def test_a_dry_run_of_a_reviewed_policy_asks_nobody_and_plans_the_approval(run, shop_db: Path, storage: Path,
                                                                           smtp) -> None:
    from airflow.models.hitl import HITLDetail
    from airflow.utils.session import create_session

    before = checksums(shop_db)
    dag_run, report = run("dry-reviewed", policy="reviewed_erasure_policy", dry_run=True)

    assert dag_run.state == "success"
    with create_session() as session:
        assert session.query(HITLDetail).count() == 0  # no question reached Airflow's required actions
    assert checksums(shop_db) == before and smtp.received == []
    (planned,) = [e for e in report["events"] if e["event"] == "approval_planned"]
    assert planned["subject"] == "Approve privacy request dry-reviewed?"
    assert "Required actions" in planned["asked_of"] and planned["options"] == ["Approve", "Reject"]
    assert report["review"] is None and report["rows_planned"] == 2 and report["status"] == "complete"
