"""The overview rows: masked identities, the checkpoint a request stands at, due dates and urgency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.privacy_requests.deliverables.overview import RunInfo, TaskState, mask_identity, request_row, run_note
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig

DEMO = Path(__file__).resolve().parents[2] / "include" / "privacy"
ORDER = ["validate_request", "access.demo_shop.customer", "finalize"]


@pytest.fixture(scope="module")
def demo() -> PrivacyConfig:
    return load_config(DEMO)


def test_identities_are_shown_partly_masked() -> None:
    assert mask_identity("jane@example.com") == "j***@example.com"
    assert mask_identity("+15555550100") == "+1********00"
    assert mask_identity("abc") == "***"


def run(state: str, received: datetime, tasks: list[TaskState], policy: str = "default_erasure_policy") -> RunInfo:
    return RunInfo("manual__1", {"policy": policy, "identity": {"email": "jane@example.com"}, "request_id": "r-1"},
                   state, received, tasks)


def test_a_failed_request_stands_at_its_failed_checkpoint_and_is_overdue(demo: PrivacyConfig) -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    tasks = [TaskState("validate_request", "success", 1, now, now),
             TaskState("access.demo_shop.customer", "failed", 2, now, now)]
    row = request_row(demo, run("failed", datetime(2026, 2, 1, tzinfo=UTC), tasks), None, ORDER, now)
    assert row.checkpoint == "access.demo_shop.customer"
    assert row.due == datetime(2026, 3, 1, tzinfo=UTC) and row.urgency == "overdue"
    assert row.identity == "j***@example.com" and row.request_id == "r-1"


def test_a_running_ccpa_request_due_within_a_week_is_due_soon(demo: PrivacyConfig) -> None:
    received = datetime(2026, 1, 1, tzinfo=UTC)
    now = received + timedelta(days=40)
    tasks = [TaskState("access.demo_shop.customer", "running", 1, now)]
    row = request_row(demo, run("running", received, tasks, "access_and_erasure_policy"), None, ORDER, now)
    assert row.checkpoint == "access.demo_shop.customer"
    assert row.days_left == 5 and row.urgency == "due-soon"


def test_run_notes_summarize_the_outcome() -> None:
    assert run_note({"status": "complete", "rows_found": 12, "rows_masked": 5, "emails_sent": 1}) == (
        "Complete: 12 row(s) found, 5 masked, 1 vendor email(s) sent.")
    failed = {"status": "failed", "failed_checkpoint": {"checkpoint": "finalize", "try_number": 2,
                                                        "error": "TransientError"}}
    assert run_note(failed).startswith("Failed at finalize (try 2): TransientError.")


def test_waiting_and_rejected_requests_say_so(demo: PrivacyConfig) -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    waiting = [TaskState("validate_request", "success", 1, now, now),
               TaskState("approve_request", "awaiting_input", 1, now, None)]
    row = request_row(demo, run("running", now, waiting), None, ["validate_request", "approve_request"], now)
    assert (row.status, row.checkpoint) == ("awaiting input", "approve_request")
    rejected = {"status": "rejected", "rows_found": 0, "rows_masked": 0, "emails_sent": 0,
                "review": {"event": "request_rejected", "by": "dpo", "reason": "duplicate"}}
    assert request_row(demo, run("success", now, []), rejected, ORDER, now).status == "rejected"
    # Cleared after the rejection and asking again: the live state wins over the old report.
    assert request_row(demo, run("running", now, waiting), rejected, ORDER, now).status == "awaiting input"
    assert run_note(rejected) == "Rejected by dpo: duplicate. Nothing was read or changed."


def test_a_request_waiting_for_its_vendor_shows_it_with_its_extended_clock(demo: PrivacyConfig) -> None:
    received = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
    now = received + timedelta(days=50)
    tasks = [TaskState("vendor_confirmation.daycare_vendor", "awaiting_input", 1, now)]
    vendors = [{"dataset": "daycare_vendor", "vendor": "Happy Days Daycare", "answer": "awaiting vendor", "days": 3.0}]
    row = request_row(demo, run("running", received, tasks, "access_and_erasure_policy"), None, ORDER, now,
                      extensions=[{"days": 45, "reason": "complex"}], vendors=vendors)
    assert row.status == "awaiting vendor"
    assert row.due == received + timedelta(days=90) and row.urgency == ""  # due after 45 + 45 days, not overdue
    assert row.extended == "+45 day(s): complex"
    assert row.acknowledge_by == datetime(2026, 1, 15, tzinfo=UTC) and row.vendors == vendors
    gdpr = request_row(demo, run("running", received, []), None, ORDER, now)
    assert gdpr.acknowledge_by is None and gdpr.due == datetime(2026, 2, 1, tzinfo=UTC)
