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
