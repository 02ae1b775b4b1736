"""The overview's batches: one row per batch run with its counts, its subjects, and a subject seen as a request."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.privacy_requests.deliverables.overview import (
    RunInfo,
    TaskState,
    batch_row,
    batch_subjects,
    belongs_to_batch,
    request_row,
    subject_run,
)
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig

DEMO = Path(__file__).resolve().parents[2] / "include" / "privacy"
ORDER = ["validate_request", "access.demo_shop.customer", "finalize"]
RECEIVED = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo() -> PrivacyConfig:
    return load_config(DEMO)


def batch_run(state: str, tasks: list[TaskState], conf: dict | None = None) -> RunInfo:
    return RunInfo("manual__7", conf if conf is not None else {"batch_id": "drop-2026-11",
                                                              "policy": "default_erasure_policy"},
                   state, RECEIVED, tasks)


REPORT = {"batch_id": "drop-2026-11", "policy": "default_erasure_policy", "status": "complete",
          "subjects_accepted": 2, "subjects_rejected": 1,
          "subjects": [{"request_id": "r-3", "status": "complete", "rows_found": 3, "rows_masked": 2},
                       {"request_id": "r-1", "status": "complete", "rows_found": 0, "rows_masked": 0}],
          "rejected": [{"position": 2, "request_id": "r-2", "reason": "unknown identity type 'fax'"}]}


def test_a_finished_batch_shows_its_report_counts(demo: PrivacyConfig) -> None:
    tasks = [TaskState("validate_request", "success", 1, RECEIVED, RECEIVED),
             TaskState("finalize", "success", 1, RECEIVED, RECEIVED.replace(minute=5))]
    row = batch_row(demo, batch_run("success", tasks), REPORT, ORDER)
    assert (row.batch_id, row.policy, row.status, row.checkpoint) == (
        "drop-2026-11", "Erasure request (GDPR Art. 17)", "complete", "finalize")
    assert (row.subjects, row.rejected) == (3, 1)


def test_a_running_batch_without_a_report_stands_at_its_checkpoint_and_its_id_defaults_to_the_run(
        demo: PrivacyConfig) -> None:
    tasks = [TaskState("access.demo_shop.customer", "running", 1, RECEIVED)]
    row = batch_row(demo, batch_run("running", tasks, {"policy": "default_erasure_policy"}), None, ORDER)
    assert (row.batch_id, row.status, row.checkpoint, row.subjects, row.rejected) == (
        "manual__7", "running", "access.demo_shop.customer", None, None)


def test_subjects_are_listed_by_request_id_then_the_rejected_with_why() -> None:
    subjects = batch_subjects(REPORT)
    assert [(s.request_id, s.status, s.rows_found, s.rows_masked, s.reason) for s in subjects] == [
        ("r-1", "complete", 0, 0, None), ("r-3", "complete", 3, 2, None),
        ("r-2", "rejected", None, None, "subject 2: unknown identity type 'fax'")]
    assert batch_subjects(None) == []


def test_a_request_belongs_to_a_batch_only_when_its_events_name_the_batch() -> None:
    subject = {"events": [{"event": "request_validated", "batch_id": "drop-2026-11"}]}
    assert belongs_to_batch(subject, "drop-2026-11")
    assert not belongs_to_batch(subject, "drop-2026-12")
    assert not belongs_to_batch({"events": [{"event": "request_validated"}]}, "drop-2026-11")  # a single request
    assert not belongs_to_batch(None, "drop-2026-11")


def test_a_subject_reads_as_a_request_of_the_batch_policy_and_checkpoints(demo: PrivacyConfig) -> None:
    tasks = [TaskState("finalize", "success", 1, RECEIVED, RECEIVED)]
    run = subject_run(batch_run("success", tasks, {"batch_id": "b", "policy": "default_erasure_policy",
                                                   "subjects": [{"identity": {"email": "jane@example.com"}}]}), "r-2")
    row = request_row(demo, run, {"status": "rejected"}, ORDER, RECEIVED)
    assert (row.request_id, row.run_id, row.policy, row.status, row.checkpoint, row.identity) == (
        "r-2", "manual__7", "Erasure request (GDPR Art. 17)", "rejected", "finalize", "-")
    assert row.due is not None and (row.due - RECEIVED).days >= 28
