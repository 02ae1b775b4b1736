"""Requests for one person that overlap, and runs that end outside the engine, under dag.test's task loop.

A copy asked before an erasure is whole: the erasure's steps wait (rescheduled, no worker held) until the
access request has written its package. A claim whose run ended in Airflow without the engine knowing (a
worker killed for good) no longer locks the subject. A run id Airflow cannot serve is refused before any
claim. Each test failed on the code before its fix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.dag_runs import drive, start, table, task_states

JANE = {"email": "jane@example.com"}


@pytest.fixture
def build_dag(airflow_db: None, config_folder, storage: Path, monkeypatch: pytest.MonkeyPatch):
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.airflow.operators import collections
    from include.privacy_requests.model.loading import load_config

    monkeypatch.setattr(collections, "WAIT_POKE_SECONDS", 0.5, raising=False)
    return lambda: build_privacy_request_dag(load_config(config_folder.path))


def package_rows(storage: Path, request_id: str) -> int:
    package = json.loads((storage / request_id / "access_package.json").read_text())
    return sum(len(rows) for rows in package.values())


def set_run_state(dag, run_id: str, state: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).update({"state": state})


def test_an_erasure_waits_for_the_earlier_access_request_so_the_copy_is_whole(build_dag, config_folder,
                                                                              shop_db: Path, storage: Path,
                                                                              smtp) -> None:
    """Asked for a copy, then for deletion: the access request has only been validated when the erasure
    starts; the erasure reads, then waits before masking anything until the package is written."""
    from include.privacy_requests.deliverables.overview import RunInfo, TaskState, request_row
    from include.privacy_requests.model.loading import load_config

    dag = build_dag()
    copy = start(dag, {"policy": "default_access_policy", "identity": JANE, "request_id": "copy"},
                 ["validate_request"])
    erase = start(dag, {"policy": "default_erasure_policy", "identity": JANE, "request_id": "erase"},
                  ["validate_request"])
    before = table(shop_db, "customer")

    def erasure_waits() -> bool:
        return any(state == "up_for_reschedule" for state, _ in task_states(dag, erase).values())

    drive(dag, erase, until=erasure_waits, timeout=180)
    assert table(shop_db, "customer") == before  # nothing masked while the copy is not written
    report = json.loads((storage / "erase" / "report.json").read_text())
    assert (report["status"], report["waiting_for"]) == ("waiting", "copy")
    now = datetime.now(UTC)
    run = RunInfo(erase, {"policy": "default_erasure_policy", "request_id": "erase", "identity": JANE}, "running",
                  now, [TaskState(t, s, n) for t, (s, n) in task_states(dag, erase).items()])
    row = request_row(load_config(config_folder.path), run, report, [t.task_id for t in run.tasks], now)
    assert row.status == "waiting for access request copy"

    assert drive(dag, copy, timeout=300) == "success"
    assert package_rows(storage, "copy") == 12  # the whole copy (11 or fewer when the erasure went first)
    assert drive(dag, erase, timeout=300) == "success"
    assert table(shop_db, "customer") != before
    erased = json.loads((storage / "erase" / "report.json").read_text())
    assert erased["status"] == "complete" and erased["rows_masked"] > 0
    events = [e["event"] for e in erased["events"]]
    assert "waiting_for_access_request" in events and "wait_over" in events
    assert not list((storage / "_readers").rglob("*.json"))  # no reader mark is left behind


def test_a_claim_whose_run_was_killed_outside_the_engine_does_not_lock_the_subject(build_dag, run_request,
                                                                                  shop_db: Path,
                                                                                  storage: Path) -> None:
    """validate_request claimed the subject, then the run died where the engine could record nothing (a
    worker killed for good, a heartbeat timeout): Airflow marks the run failed, the store says nothing."""
    dag = build_dag()
    dead = start(dag, {"policy": "default_access_policy", "identity": JANE, "request_id": "dead"},
                 ["validate_request"])
    _, live_first, _ = run_request("default_access_policy", JANE, request_id="while-alive")
    assert live_first.state == "failed"  # while its run is alive, the subject stays held

    set_run_state(dag, dead, "failed")  # the scheduler gives up on it
    assert not (storage / "dead" / "report.json").exists()  # nothing was recorded in the store
    _, later, _ = run_request("default_access_policy", JANE, request_id="later")
    assert later.state == "success"
    assert package_rows(storage, "later") == 12


def test_a_run_id_airflow_cannot_serve_fails_before_claiming_the_subject(build_dag, run_request, storage: Path,
                                                                         shop_db: Path) -> None:
    """The run id '.' (allowed by Airflow's default run id pattern): validate_request refuses it before
    claiming, so a later request for the subject is not locked out."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import text

    dag = build_dag()
    subset = dag.partial_subset(task_ids=["validate_request"], include_downstream=False, include_upstream=False)
    run_id = subset.test(run_conf={"policy": "default_access_policy", "identity": JANE},
                         mark_success_pattern="validate_request").run_id  # a run whose task has not run yet
    with create_session() as session:  # the same run, as if triggered over REST with dag_run_id "."
        session.execute(text("PRAGMA defer_foreign_keys = ON"))  # both tables renamed in one transaction
        session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run_id).update(
            {"run_id": ".", "state": None, "try_number": 0})
        session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).update({"run_id": ".", "state": "running"})
    drive(subset, ".", timeout=120)
    assert task_states(dag, ".")["validate_request"][0] == "failed"
    refused = [json.loads(p.read_text()) for p in storage.glob("run-*/report.json")]
    assert refused and "cannot be served by Airflow" in refused[0]["failed_checkpoint"]["message"]
    assert not (storage / "_subjects").exists()
    set_run_state(dag, ".", "failed")
    _, later, _ = run_request("default_access_policy", JANE, request_id="later")
    assert later.state == "success"
