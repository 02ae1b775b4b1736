"""The order of requests for one person, and claims held by runs that died outside the engine.

An erasure waits for the access requests for the same person received before it (subject_order.py); a claim
whose run has ended in Airflow without the engine recording it is released (in_flight.py); a run id Airflow
cannot serve is refused before anything is claimed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.deliverables.overview import RunInfo, TaskState, request_row
from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.lifecycle import (
    finish_request,
    record_failure,
    start_request,
    wait_for_earlier_readers,
)
from include.privacy_requests.request.request import (
    PrivacyRequest,
    hold_subject,
    open_request,
    run_id_problem,
    stop_reading,
)
from include.privacy_requests.store import layout
from tests.support.paths import DEMO_CONFIG

KEY = Fernet.generate_key().decode()
T0, T1, T2 = "2026-12-01T10:00:00+00:00", "2026-12-01T10:00:01+00:00", "2026-12-01T10:00:02+00:00"


@pytest.fixture(scope="module")
def config() -> PrivacyConfig:
    return load_config(DEMO_CONFIG)


def started(config: PrivacyConfig, root: Path, request_id: str, kind: str, received: str,
            identity: dict[str, str] | None = None, run_ended=None, **conf) -> PrivacyRequest:
    request = open_request(config, {"policy": f"default_{kind}_policy", "request_id": request_id,
                                    "identity": identity or {"email": "jane@example.com"}, **conf},
                           f"run-{request_id}", root, KEY)
    start_request(request, f"run-{request_id}", received, run_ended=run_ended)
    return request


def report(request: PrivacyRequest) -> dict:
    return json.loads((request.store.base / layout.REPORT).read_text())


def test_an_erasure_waits_for_an_earlier_access_request_until_its_package_is_written(config, tmp_path) -> None:
    access = started(config, tmp_path, "access-1", "access", T0)
    erasure = started(config, tmp_path, "erasure-1", "erasure", T1)
    assert wait_for_earlier_readers(erasure) == "access-1"
    assert wait_for_earlier_readers(erasure) == "access-1"  # looking again writes nothing new
    waiting = report(erasure)
    assert waiting["status"] == layout.WAITING and waiting["waiting_for"] == "access-1"
    assert [e["event"] for e in erasure.store.events()].count("waiting_for_access_request") == 1
    # The overview says so while the erasure step is rescheduled.
    run = RunInfo("run-erasure-1", {"policy": "default_erasure_policy", "request_id": "erasure-1",
                                    "identity": {"email": "jane@example.com"}}, "running",
                  __import__("datetime").datetime.fromisoformat(T1),
                  [TaskState("erasure.demo_shop.customer", "up_for_reschedule", 1)])
    row = request_row(config, run, waiting, ["erasure.demo_shop.customer"], run.received)
    assert row.status == "waiting for access request access-1"

    stop_reading(access)  # upload_access_package wrote the package
    assert wait_for_earlier_readers(erasure) is None
    assert not (erasure.store.base / layout.REPORT).exists()  # the waiting report goes; the run goes on
    assert [e["event"] for e in erasure.store.events()][-1] == "wait_over"


def test_a_later_access_request_never_delays_an_erasure(config, tmp_path) -> None:
    started(config, tmp_path, "erasure-1", "erasure", T0)
    started(config, tmp_path, "access-1", "access", T1)
    erasure = open_request(config, {"policy": "default_erasure_policy", "request_id": "erasure-1",
                                    "identity": {"email": "jane@example.com"}}, "run-erasure-1", tmp_path, KEY)
    assert wait_for_earlier_readers(erasure) is None


def test_the_same_person_is_any_shared_identity_value_whatever_its_case(config, tmp_path) -> None:
    started(config, tmp_path, "access-1", "access", T0, {"email": "Jane@Example.com", "phone_number": "+15555550100"})
    started(config, tmp_path, "access-2", "access", T0, {"email": "ada@example.com"})
    erasure = started(config, tmp_path, "erasure-1", "erasure", T1, {"email": "jane@example.com"})
    other = started(config, tmp_path, "erasure-2", "erasure", T1, {"email": "bob@example.com"})
    assert wait_for_earlier_readers(erasure) == "access-1"
    assert wait_for_earlier_readers(other) is None
    marks = [p.name for p in (tmp_path / layout.READERS).rglob("*.json")]
    assert sorted(marks) == ["access-1.json", "access-1.json", "access-2.json"]
    assert "jane" not in " ".join(str(p) for p in (tmp_path / layout.READERS).rglob("*")).lower()


def test_finished_failed_dead_and_dry_run_readers_block_nobody(config, tmp_path) -> None:
    access = started(config, tmp_path, "access-1", "access", T0)
    dry = started(config, tmp_path, "access-dry", "access", T0, dry_run=True)
    erasure = started(config, tmp_path, "erasure-1", "erasure", T2)
    assert wait_for_earlier_readers(erasure) == "access-1"
    # Its run has ended in Airflow (killed for good): the orchestrator says so, the mark counts no more.
    assert wait_for_earlier_readers(erasure, run_ended=lambda run_id: run_id == "run-access-1") is None
    record_failure(access, "access.demo_shop.customer", 3, RuntimeError("boom"), final=True)
    assert wait_for_earlier_readers(erasure) is None
    assert dry.request_id not in [p.stem for p in (tmp_path / layout.READERS).rglob("*.json")]
    second = started(config, tmp_path, "access-2", "access", T1)
    assert wait_for_earlier_readers(erasure) == "access-2"
    finish_request(second)
    assert wait_for_earlier_readers(erasure) is None


def test_requests_received_at_the_same_instant_are_ordered_by_request_id(config, tmp_path) -> None:
    started(config, tmp_path, "b-access", "access", T0)
    erasure = started(config, tmp_path, "a-erasure", "erasure", T0)
    assert wait_for_earlier_readers(erasure) is None  # "a-erasure" < "b-access": the erasure came first
    # Another access request for her (another identity set, so not refused as the same request in flight).
    started(config, tmp_path, "0-access", "access", T0, {"email": "jane@example.com", "phone_number": "+15555550100"})
    assert wait_for_earlier_readers(erasure) == "0-access"


# -- claims of runs that ended outside the engine (issue 20 item 12) --------------------------------------

def test_a_claim_whose_run_ended_in_airflow_is_released(config, tmp_path) -> None:
    """validate_request claimed the subject, then the run failed where the engine could not record it."""
    started(config, tmp_path, "access-1", "access", T0)
    with pytest.raises(RequestError, match="'access-1' for the same subject and policy is still in progress"):
        started(config, tmp_path, "access-2", "access", T1)
    with pytest.raises(RequestError, match="still in progress"):  # Airflow says the run is still live
        started(config, tmp_path, "access-2", "access", T1, run_ended=lambda run_id: False)
    asked: list[str] = []
    started(config, tmp_path, "access-2", "access", T1, run_ended=lambda run_id: asked.append(run_id) or True)
    assert asked == ["run-access-1"]  # asked about the holder's run, by its run id


def test_a_run_resumed_after_its_claim_was_taken_over_may_not_work_beside_the_new_holder(config, tmp_path) -> None:
    old = started(config, tmp_path, "erasure-1", "erasure", T0)
    started(config, tmp_path, "erasure-2", "erasure", T1, run_ended=lambda run_id: run_id == "run-erasure-1")
    # Somebody clears the old run's failed task: its next step finds the subject held by a live request.
    with pytest.raises(RequestError, match="'erasure-2' .* took the subject over after this run had ended"):
        hold_subject(old, run_ended=lambda run_id: run_id == "run-erasure-1")
    newer = open_request(config, {"policy": "default_erasure_policy", "request_id": "erasure-2",
                                  "identity": {"email": "jane@example.com"}}, "run-erasure-2", tmp_path, KEY)
    hold_subject(newer)  # the holder itself goes on
    finish_request(newer)
    hold_subject(old)  # the newer request finished: the resumed run takes its subject again
    with pytest.raises(RequestError, match="'erasure-1' for the same subject and policy is still in progress"):
        started(config, tmp_path, "erasure-3", "erasure", T2)


@pytest.mark.parametrize("run_id", [".", "..", "a/b"])
def test_a_run_id_airflow_cannot_serve_is_refused_before_anything_is_claimed(config, tmp_path, run_id) -> None:
    request = open_request(config, {"policy": "default_access_policy", "identity": {"email": "jane@example.com"}},
                           run_id, tmp_path, KEY)
    with pytest.raises(RequestError, match="cannot be served by Airflow's execution API"):
        start_request(request, run_id, T0)
    assert not (tmp_path / layout.SUBJECTS).exists() and not (tmp_path / layout.READERS).exists()
    assert not request.store.exists(layout.REQUEST)
    assert run_id_problem("manual__2026-12-01T10:00:00+00:00") is None and run_id_problem("a.b~c:d+e") is None
