"""The certificate never drifts from report.json: every step that writes the report (finalize, a vendor digest,
a deadline extension, a failure, retention) writes the certificate from the same text, so its SHA-256, status
and due date (the one due date: the policy's time limit plus the extensions granted) are the report's."""

from __future__ import annotations

import hashlib
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography.fernet import Fernet

from include.privacy_requests.connectors.vendor import sample_instructions
from include.privacy_requests.model.dates import add_months
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.outbound.vendor_digest import send_digest
from include.privacy_requests.outbound.vendor_email import send_vendor_email
from include.privacy_requests.request.lifecycle import finish_request, record_failure
from include.privacy_requests.request.report import rewrite_report
from include.privacy_requests.request.request import claim_request_id, open_request
from include.privacy_requests.request.statutory_clock import extend
from include.privacy_requests.store import layout
from tests.support.outbox import Outbox
from tests.support.paths import DEMO_CONFIG

VENDOR = "daycare_vendor"
KEY = Fernet.generate_key().decode()


def digest_config(tmp_path: Path) -> PrivacyConfig:
    folder = tmp_path / "privacy"
    shutil.copytree(DEMO_CONFIG, folder, ignore=shutil.ignore_patterns("seed"))
    settings = yaml.safe_load((folder / "privacy.yml").read_text())
    settings["datasets"][VENDOR]["email"]["digest"] = "@weekly"
    (folder / "privacy.yml").write_text(yaml.safe_dump(settings))
    return load_config(folder)


def certified(folder: Path) -> dict[str, str]:
    """What the certificate says, after checking that it describes report.json as it is now."""
    certificate = (folder / layout.CERTIFICATE).read_text()
    digest = hashlib.sha256((folder / layout.REPORT).read_bytes()).hexdigest()
    assert f'<code id="report-sha256">{digest}</code>' in certificate, "the certificate drifted from the report"
    rows = dict(re.findall(r"<tr><th>(\w+)</th><td>(.*?)</td></tr>", certificate))
    status = re.search(r'<strong id="status">(.*?)</strong>', certificate)
    assert status
    return {**rows, "status": status.group(1)}


def test_every_write_of_the_report_rewrites_the_certificate_with_the_extended_due_date(tmp_path: Path) -> None:
    config, root = digest_config(tmp_path), tmp_path / "storage"
    received = datetime.now(UTC) - timedelta(days=40)
    request = open_request(config, {"policy": "default_erasure_policy", "identity": {"email": "ann@example.com"},
                                    "request_id": "r-1"}, "run-r-1", root, KEY)
    claim_request_id(request, "run-r-1", received.isoformat())
    folder = root / "r-1"
    # Extended by a month on day 20 (GDPR): due two months after receipt, not one.
    extend(request.store, request.policy, reason="many systems", months=1, by="dpo", now=received + timedelta(20))
    due = add_months(add_months(received, 1), 1)
    instruction = {**sample_instructions()[0], "collection": f"{VENDOR}:customer", "name": "customer",
                   "locators": {"email": ["ann@example.com"]}}
    request.store.put(f"{layout.instructions(VENDOR)}/customer.json", instruction)
    send_vendor_email(request, VENDOR, sender=lambda: "x@example.com", send=Outbox(), try_number=1)

    finish_request(request)  # finalize: the vendor waits for its digest
    shown = certified(folder)
    assert shown["status"] == "awaiting vendor digest"
    assert shown["Due"] == due.isoformat() and "missed" not in shown["Deadline"]
    assert shown["Completed"] == "not yet: awaiting vendor digest"

    # A second extension while the vendor waits: the report and the certificate show the new due date.
    extend(request.store, request.policy, reason="vendor slow", months=1, by="dpo")
    rewrite_report(config, request.store)  # what the extension route does after extend()
    assert certified(folder)["Due"] == add_months(due, 1).isoformat()

    outbox = Outbox()
    send_digest(config, root, KEY, VENDOR, "d-1", sender=lambda: "privacy@example.com", send=outbox, try_number=1)
    assert len(outbox.sent) == 1
    shown = certified(folder)  # the digest rewrote the report: the certificate follows
    assert shown["status"] == "complete" and 'class="met"' in shown["Deadline"]
    completed = datetime.fromisoformat(shown["Completed"])
    assert received + timedelta(days=40) <= completed <= datetime.now(UTC)
    assert outbox.sent[0]["Message-ID"].strip("<>") in (folder / layout.CERTIFICATE).read_text()

    finish_request(request)  # a cleared finalize rewrites both; the completion time stays the first one
    assert certified(folder)["Completed"] == shown["Completed"]

    # A failure after all (a cleared task that failed): the report says failed and no certificate claims more.
    record_failure(request, "finalize", 2, RuntimeError("boom"), final=True)
    assert not (folder / layout.CERTIFICATE).exists()
