"""Vendor digests (digest_queue.py, vendor_digest.py) on a real store, with the SMTP send handed in: requests
wait for the digest, one digest lists every waiting request once, and their reports follow."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from include.privacy_requests.connectors.vendor import sample_instructions
from include.privacy_requests.deliverables.deadlines import due_soon
from include.privacy_requests.deliverables.overview import RunInfo, request_row, run_note
from include.privacy_requests.errors import ConfigError, StepSkipped, TransientError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.outbound.digest_queue import digest_store
from include.privacy_requests.outbound.vendor_digest import digest_due, send_digest
from include.privacy_requests.outbound.vendor_email import send_vendor_email
from include.privacy_requests.request.lifecycle import finish_request
from include.privacy_requests.request.report import build_report
from include.privacy_requests.request.request import PrivacyRequest, claim_request_id, open_request
from include.privacy_requests.store import in_flight, layout
from tests.support.outbox import Outbox
from tests.support.paths import DEMO_CONFIG

VENDOR = "daycare_vendor"
KEY = Fernet.generate_key().decode()


def _config(tmp_path: Path, digest: str = "@weekly") -> PrivacyConfig:
    folder = tmp_path / "privacy"
    shutil.copytree(DEMO_CONFIG, folder, ignore=shutil.ignore_patterns("seed"))
    settings = yaml.safe_load((folder / "privacy.yml").read_text())
    settings["datasets"][VENDOR]["email"]["digest"] = digest
    (folder / "privacy.yml").write_text(yaml.safe_dump(settings))
    return load_config(folder)


@pytest.fixture
def config(tmp_path: Path) -> PrivacyConfig:
    return _config(tmp_path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "storage"



def waiting_request(config: PrivacyConfig, root: Path, request_id: str, email: str) -> PrivacyRequest:
    """A request whose vendor step ran: its instruction recorded, then handed to the digest."""
    request = open_request(config, {"policy": "default_erasure_policy", "identity": {"email": email},
                                    "request_id": request_id}, f"run-{request_id}", root, KEY)
    instruction = {**sample_instructions()[0], "collection": f"{VENDOR}:customer", "name": "customer",
                   "locators": {"email": [email]}}
    request.store.put(f"{layout.instructions(VENDOR)}/customer.json", instruction)
    send_vendor_email(request, VENDOR, sender=_no_sender, send=_no_send, try_number=1)
    return request


def _no_sender() -> str:
    raise AssertionError("a digest vendor's request must not send")


def _no_send(message: EmailMessage) -> dict[str, Any]:
    raise AssertionError("a digest vendor's request must not send")


def digest(config: PrivacyConfig, root: Path, outbox: Outbox, digest_id: str, try_number: int = 1) -> dict[str, Any]:
    return send_digest(config, root, KEY, VENDOR, digest_id, sender=lambda: "privacy@example.com", send=outbox,
                       try_number=try_number)


def report(root: Path, request_id: str) -> dict[str, Any]:
    return json.loads((root / request_id / layout.REPORT).read_text())


def test_two_waiting_requests_get_one_digest_listing_both_and_their_reports_follow(config, root) -> None:
    first = waiting_request(config, root, "r-1", "ann@example.com")
    second = waiting_request(config, root, "r-2", "bob@example.com")
    for request in (first, second):
        finish_request(request)  # finished before the digest: its instructions are deleted
        assert not request.store.list(layout.instructions(VENDOR))
        body = report(root, request.request_id)
        assert body["status"] == layout.AWAITING_DIGEST == "awaiting vendor digest"
        assert body["vendor_emails"][0]["status"] == "awaiting vendor digest"
        assert body["emails_sent"] == 0
    outbox = Outbox()

    sent = digest(config, root, outbox, "d-1")

    assert len(outbox.sent) == 1 and sent["requests"] == 2
    text = outbox.text(0)
    assert "r-1" in text and "r-2" in text and "ann@example.com" in text and "bob@example.com" in text
    assert outbox.sent[0]["To"] == "privacy@daycare-vendor.example"
    for request_id in ("r-1", "r-2"):
        body = report(root, request_id)
        assert body["status"] == "complete" and body["emails_sent"] == 1
        assert body["vendor_emails"] == [{"dataset": VENDOR, "status": "sent", "message_id": sent["message_id"],
                                          "time": sent["time"], "digest": "d-1"}]
        told = [e for e in body["events"] if e["event"] == "email_sent"]
        assert [(e["message_id"], e["digest"], e["dataset"]) for e in told] == [(sent["message_id"], "d-1", VENDOR)]
    # The digest's list keeps the request ids only: the instructions (personal data) are gone.
    kept = digest_store(root, VENDOR, KEY).get(layout.digest_list("d-1"))
    assert {k: kept[k] for k in ("requests", "message_id")} == {"requests": ["r-1", "r-2"],
                                                                "message_id": sent["message_id"]}
    assert "entries" not in kept

    assert digest(config, root, outbox, "d-1", try_number=2) == sent  # a cleared digest repeats nothing
    with pytest.raises(StepSkipped, match="no request waits"):
        digest(config, root, outbox, "d-2")  # the next digest: nothing new
    assert len(outbox.sent) == 1
    assert len([e for e in report(root, "r-1")["events"] if e["event"] == "email_sent"]) == 1


def test_a_failed_digest_resends_its_own_list_and_a_later_request_waits_for_the_next(config, root) -> None:
    waiting_request(config, root, "r-1", "ann@example.com")
    outbox = Outbox()
    outbox.fail = TransientError("421 try later")
    with pytest.raises(TransientError):
        digest(config, root, outbox, "d-1")
    waiting_request(config, root, "r-2", "bob@example.com")  # arrives while d-1 waits for its retry
    outbox.fail = None

    digest(config, root, outbox, "d-1", try_number=2)
    digest(config, root, outbox, "d-2")

    assert len(outbox.sent) == 2
    assert "r-1" in outbox.text(0) and "r-2" not in outbox.text(0)
    assert "r-2" in outbox.text(1) and "r-1" not in outbox.text(1)


def test_a_rerun_vendor_step_hands_the_request_over_once(config, root) -> None:
    request = waiting_request(config, root, "r-1", "ann@example.com")
    send_vendor_email(request, VENDOR, sender=_no_sender, send=_no_send, try_number=2)  # a cleared task
    outbox = Outbox()
    digest(config, root, outbox, "d-1")
    send_vendor_email(request, VENDOR, sender=_no_sender, send=_no_send, try_number=3)  # cleared after the digest

    with pytest.raises(StepSkipped):
        digest(config, root, outbox, "d-2")
    assert len(outbox.sent) == 1
    assert [e["event"] for e in request.store.events()].count("email_awaiting_digest") == 1


def test_a_digest_vendors_pending_instructions_are_encrypted(config, root) -> None:
    waiting_request(config, root, "r-1", "ann@example.com")
    stored = list((root / layout.DIGESTS / VENDOR / layout.PENDING).iterdir())
    assert [p.name for p in stored] == ["r-1.json"]
    assert b"ann@example.com" not in stored[0].read_bytes()


def test_a_request_awaiting_its_digest_frees_its_subject_but_its_deadline_still_counts(config, root) -> None:
    """The overview and the run note say what it waits for; the deadline alert still sees it as open."""
    request = waiting_request(config, root, "r-1", "ann@example.com")
    received = datetime(2026, 11, 1, tzinfo=UTC)
    claim_request_id(request, "run-r-1", received.isoformat())
    assert in_flight.claim(root, request.subject, "r-1") is None
    # Its report written, its subject not released (as when a worker dies after finalize wrote the report).
    request.store.write_public(layout.REPORT, [build_report(request).to_json()])
    body = report(root, "r-1")

    assert run_note(body).endswith("awaiting the vendor digest of daycare_vendor.")
    run = RunInfo("run-r-1", {"policy": "default_erasure_policy", "request_id": "r-1"}, "success", received)
    assert request_row(config, run, body, [], received).status == "awaiting vendor digest"
    assert [r["request_id"] for r in due_soon(config, root, KEY, received + timedelta(days=28), 5)] == ["r-1"]
    assert in_flight.claim(root, request.subject, "r-2") is None  # a new request for the subject may start
    finish_request(request)

    digest(config, root, Outbox(), "d-1")
    assert due_soon(config, root, KEY, received + timedelta(days=28), 5) == []
    assert run_note(report(root, "r-1")).startswith("Complete:")


@pytest.mark.parametrize(("cron", "at", "due"), [
    ("0 0 * * 0", datetime(2026, 11, 29, tzinfo=UTC), True),  # a Sunday at midnight
    ("0 0 * * 0", datetime(2026, 11, 28, tzinfo=UTC), False),
    ("0 6 * * 1-5", datetime(2026, 11, 30, 6, tzinfo=UTC), True),
    ("0 6 * * 1-5", datetime(2026, 11, 30, 7, tzinfo=UTC), False),
])
def test_a_scheduled_run_sends_only_at_the_vendors_own_times(cron: str, at: datetime, due: bool) -> None:
    assert digest_due(cron, at) is due


def test_a_bad_digest_schedule_is_a_config_error_naming_privacy_yml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"privacy.yml: datasets.daycare_vendor.email.digest: .*'every monday' "
                                          r"is neither a cron expression"):
        _config(tmp_path, "every monday")
    assert _config(tmp_path / "again", "@weekly").mapping(VENDOR).email.digest_cron == "0 0 * * 0"
