"""Retention: once a request is finished and older than the retention period, its identity is nowhere in
Airflow's metadata database (run conf, audit log, questions to a person and their answers); younger and
unfinished requests keep theirs.

Requests come in through Airflow's own code paths: the REST API (in-process FastAPI app, with and without a
run id), the CLI (``airflow dags trigger``), and a person answering a manual collection through the REST API.
The runs are then executed in-process, aged by moving ``end_date`` back, and the retention DAG runs with
``dag.test()`` through an Airflow connection to the metadata database, as it would on a worker.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.dag_runs import clear, resume, task_states
from tests.support.paths import ROOT

DAG_ID = "privacy_request"
FORM = "access.paper_archive.membership_form"
POLICY = "default_access_policy"
# Each run's subject; the clerk enters a record naming the subject, which is personal data too.
OLD_CLI = "old.cli@example.com"
OLD_REST = "old.rest@example.com"
OLD_FAILED = "old.failed@example.com"
SAME_PERSON = "same.person@example.com"  # an old request and a young one by one person, both without run id
RUNNING = "still.running@example.com"
YOUNG_PHONE = "+15555550177"


def entered_name(email: str) -> str:
    return f"Name of {email.split('@')[0]}"


@pytest.fixture
def metadata_db() -> Path:
    return Path(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    """Airflow's REST API in-process (every caller an admin, as a trusted operator's token would be)."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
    with TestClient(create_app()) as client:
        yield client


@pytest.fixture
def clerk(api) -> Iterator[None]:
    """A person who answers every manual-collection question through the REST API, entering one record."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    stop = threading.Event()

    def answer_questions() -> None:
        while not stop.wait(0.2):
            with create_session() as session:
                waiting = [(ti.run_id, ti.task_id, dr.conf["identity"]["email"]) for ti, dr in session.query(
                    TaskInstance, DagRun).join(DagRun, (DagRun.run_id == TaskInstance.run_id)
                                                & (DagRun.dag_id == TaskInstance.dag_id))
                    .filter(TaskInstance.state == "awaiting_input", TaskInstance.task_id == FORM)]
            for run_id, task_id, email in waiting:
                record = {"member_number": f"M-{len(email)}", "email": email, "name": entered_name(email)}
                api.patch(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
                          json={"chosen_options": ["Confirm"], "params_input": {"rows": [record]}})

    thread = threading.Thread(target=answer_questions, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def with_manual_archive(config_folder) -> None:
    """The demo plus a manual collection (a filing cabinet a person searches by email)."""
    shutil.copy(ROOT / "tests/e2e/human_steps/datasets/paper_archive.yml", config_folder.path / "datasets")
    config_folder.edit("privacy.yml", lambda d: d["datasets"].update(paper_archive={"manual": True}))


def conf(email: str, **identity: str) -> dict:
    return {"policy": POLICY, "identity": {"email": email, **identity}}


def rest_trigger(api, body_conf: dict, run_id: str | None = None) -> str:
    body = {"logical_date": None, "conf": body_conf} | ({"dag_run_id": run_id} if run_id else {})
    response = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json=body)
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def cli_trigger(monkeypatch: pytest.MonkeyPatch, body_conf: dict, run_id: str) -> str:
    """``airflow dags trigger`` in-process; its audit row keeps the command line, conf included."""
    from airflow.cli import cli_parser

    argv = ["airflow", "dags", "trigger", DAG_ID, "-r", run_id, "-c", json.dumps(body_conf)]
    monkeypatch.setattr(sys, "argv", argv)
    args = cli_parser.get_parser().parse_args(argv[1:])
    args.func(args)
    return run_id


def set_run(run_id: str, **values) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=run_id).update(values)


def find(db: Path, needles: list[str]) -> dict[str, set[str]]:
    """Every ``table.column`` of the metadata database whose text holds each needle (blobs decoded)."""
    found: dict[str, set[str]] = {n: set() for n in needles}
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = con.execute(f'SELECT * FROM "{table}"')
            columns = [c[0] for c in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", errors="ignore")
                    if isinstance(value, str):
                        for needle in needles:
                            if needle in value:
                                found[needle].add(f"{table}.{column}")
    return found


def log_extra(db: Path, event: str, run_id: str | None) -> list[str]:
    with sqlite3.connect(db) as con:
        where = "run_id IS NULL" if run_id is None else "run_id = ?"
        return [r[0] for r in con.execute(f"SELECT extra FROM log WHERE event = ? AND {where} ORDER BY id",
                                          (event, *([run_id] if run_id else [])))]


def run_conf(db: Path, run_id: str) -> dict:
    with sqlite3.connect(db) as con:
        return json.loads(con.execute("SELECT conf FROM dag_run WHERE run_id = ?", (run_id,)).fetchone()[0])


def test_identities_of_old_finished_requests_leave_the_metadata_database(
        airflow_db, config_folder, storage, shop_db, metadata_db, api, clerk,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.airflow.retention import airflow_tables, build_retention_dag, metadata_engine
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.request.retention import (
        remove_identities,
    )

    monkeypatch.setenv("AIRFLOW_CONN_PRIVACY_METADATA_DB", f"sqlite:///{metadata_db}")
    with_manual_archive(config_folder)
    # Parsed from dags/ with this configuration too: the API server creates the runs from that version.
    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))
    config = load_config(config_folder.path)
    retention = build_retention_dag(config)
    assert retention.test().state == "success"  # nothing to do yet; also puts the DAGs in the metadata DB

    dag = build_privacy_request_dag(config)
    cli_trigger(monkeypatch, conf(OLD_CLI), "old-cli")
    rest_trigger(api, conf(OLD_REST), "old-rest")
    old_same = rest_trigger(api, conf(SAME_PERSON))  # no run id: the audit row has none either
    young = rest_trigger(api, conf(SAME_PERSON, phone_number=YOUNG_PHONE))
    rest_trigger(api, conf(OLD_FAILED), "old-failed")
    rest_trigger(api, conf(RUNNING), "running")
    for run_id in ("old-cli", "old-rest", old_same, young, "running"):
        assert resume(dag, run_id) == "success", run_id
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", "sqlite:////nonexistent/dir/shop.db")
    assert resume(dag, "old-failed") == "failed"
    clear(dag, "old-failed", [FORM])  # asked again: the first question and answer move to hitl_detail_history
    assert resume(dag, "old-failed") == "failed"

    now = datetime.now(UTC)
    for run_id in ("old-cli", "old-rest", old_same, "old-failed"):
        set_run(run_id, end_date=now - timedelta(days=91))
    set_run(young, end_date=now - timedelta(days=10))
    # Finished long ago, then cleared and running again: not finished, so not touched.
    set_run("running", state="running", end_date=now - timedelta(days=200))

    old = [OLD_CLI, OLD_REST, OLD_FAILED]
    before = find(metadata_db, [*old, *map(entered_name, old), SAME_PERSON, RUNNING])
    for needle in (*old, RUNNING):  # where Airflow keeps them: the scan can see them
        assert {"dag_run.conf", "log.extra", "hitl_detail.body", "hitl_detail.params_input"} <= before[needle], needle
    assert {"hitl_detail_history.body", "hitl_detail_history.params_input"} <= before[OLD_FAILED]

    assert retention.test().state == "success"

    after = find(metadata_db, [*old, *map(entered_name, old), SAME_PERSON, RUNNING, YOUNG_PHONE,
                               entered_name(RUNNING)])
    for needle in (*old, *map(entered_name, old)):
        assert after[needle] == set(), needle
    assert after[RUNNING] == before[RUNNING]
    assert "hitl_detail.params_input" in after[entered_name(RUNNING)]
    assert {"dag_run.conf", "log.extra"} <= after[YOUNG_PHONE]

    # One person, two requests without run id: the old one's conf and trigger row lose the identity, the
    # young one's keep it.
    assert run_conf(metadata_db, old_same) == {
        "policy": POLICY, "identity": {"email": "[removed after 90 days]"}}
    assert run_conf(metadata_db, young)["identity"] == {"email": SAME_PERSON, "phone_number": YOUNG_PHONE}
    triggers = log_extra(metadata_db, "trigger_dag_run", None)
    assert len(triggers) == 2
    assert SAME_PERSON not in triggers[0] and "[removed after 90 days]" in triggers[0]
    assert SAME_PERSON in triggers[1] and YOUNG_PHONE in triggers[1]
    # What the rows still say: the request, its policy and run id, which identity types it gave.
    assert run_conf(metadata_db, "old-rest") == {
        "policy": POLICY, "identity": {"email": "[removed after 90 days]"}}
    assert json.loads(log_extra(metadata_db, "trigger_dag_run", "old-rest")[0])["dag_run_id"] == "old-rest"
    assert "dags" in json.loads(log_extra(metadata_db, "cli_dag_trigger", None)[0])["full_command"]

    # Idempotent: a second pass finds nothing left.
    engine = metadata_engine("privacy_metadata_db")
    again = remove_identities(engine, airflow_tables(), after_days=90)
    assert again.as_dict() == {"runs": 0, "log_rows": 0, "hitl_rows": 0}
    engine.dispose()


def test_the_retention_dag_refuses_a_connection_to_another_database(airflow_db, config_folder, shop_db,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from include.privacy_requests.airflow.retention import build_retention_dag
    from include.privacy_requests.model.loading import load_config

    monkeypatch.setenv("AIRFLOW_CONN_PRIVACY_METADATA_DB", f"sqlite:///{shop_db}")
    dag = build_retention_dag(load_config(config_folder.path))
    assert dag.test().state == "failed"


def test_a_batch_conf_loses_every_subjects_identity_and_keeps_what_the_run_was() -> None:
    from include.privacy_requests.request.retention import identity_values, is_removed, marker, scrub

    batch = {"batch_id": "drop-2026-11", "policy": POLICY, "dry_run": False, "subjects": [
        {"request_id": "r-1", "identity": {"email": "a@example.com"}},
        {"request_id": "r-2", "identity": {"email": "b@example.com", "phone_number": "+15555550100"}}]}
    values = identity_values(batch)
    assert values == {"a@example.com", "b@example.com", "+15555550100"}
    mark = marker(30)
    scrubbed = scrub(batch, values, mark)
    assert scrubbed == {"batch_id": "drop-2026-11", "policy": POLICY, "dry_run": False, "subjects": [
        {"request_id": "r-1", "identity": {"email": mark}},
        {"request_id": "r-2", "identity": {"email": mark, "phone_number": mark}}]}
    assert identity_values(scrubbed) == set() and is_removed(mark)
    # The CLI's audit row keeps the command line as one string: the values go from inside it.
    command = f"['airflow', 'dags', 'trigger', '-c', '{json.dumps(batch)}']"
    assert not values & set(scrub(command, values, mark).split('"'))


def test_access_packages_are_deleted_after_their_keep_days_with_an_event_and_the_certificate_follows(
        run_request, config_folder, storage, shop_db, metadata_db, smtp, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package holds the subject's data in clear: the retention DAG deletes it once the policy's
    keep_days have passed (a younger one stays); the report says so (no data) and names where a copy still
    lives; the certificate is written again from the new report; a clear of the step does not write it again."""
    import hashlib

    from include.privacy_requests.airflow.retention import build_retention_dag
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.store import layout
    from include.privacy_requests.store.store import RequestStore

    def deliver(data: dict) -> None:
        policy = next(p for p in data["policy"] if p["key"] == "default_access_policy")
        policy["access_package"] = {"formats": ["json", "html", "csv"], "deliver": "email", "keep_days": 30}

    config_folder.edit("policies/demo_policies.yml", deliver)
    monkeypatch.setenv("AIRFLOW_CONN_PRIVACY_METADATA_DB", f"sqlite:///{metadata_db}")
    key = os.environ["AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY"]
    jane = {"email": "jane@example.com"}
    for request_id in ("old", "young"):
        dag, dag_run, states = run_request("default_access_policy", jane, request_id)
        assert dag_run.state == "success", states
    assert len(smtp.received) == 2
    old = RequestStore(storage, "old", key)
    for name in old.list(layout.EVENTS):  # written 31 days ago
        event = old.get(name)
        if event["event"] == "access_package_uploaded":
            old.put(name, {**event, "time": (datetime.fromisoformat(event["time"]) - timedelta(days=31)).isoformat()})
    files = sorted(layout.PACKAGE_FILES.values())
    assert sorted(p.name for p in (storage / "old").glob("access_package*")) == files

    retention = build_retention_dag(load_config(config_folder.path))
    run = retention.test()
    assert task_states(retention, run.run_id)["expire_access_packages"][0] == "success"
    assert list((storage / "old").glob("access_package*")) == []
    assert sorted(p.name for p in (storage / "young").glob("access_package*")) == files
    report_text = (storage / "old" / layout.REPORT).read_text()
    report = json.loads(report_text)
    [deleted] = [e for e in report["events"] if e["event"] == "access_package_deleted"]
    assert sorted(deleted["files"]) == files and deleted["keep_days"] == 30
    assert deleted["emailed_copy"] == "the subject's inbox"
    assert report["status"] == "complete" and "jane@example.com" not in report_text
    certificate = (storage / "old" / layout.CERTIFICATE).read_text()
    assert hashlib.sha256(report_text.encode()).hexdigest() in certificate

    # Cleared, the step does not write the package again (it would hold data past its term).
    clear(dag, _run_id(storage, "old", key), ["upload_access_package"])
    assert resume(dag, _run_id(storage, "old", key)) == "success"
    assert list((storage / "old").glob("access_package*")) == []
    assert len(smtp.received) == 2  # and the subject is not emailed again
    # A second pass has nothing left to delete.
    again = retention.test()
    assert task_states(retention, again.run_id)["expire_access_packages"][0] == "success"


def _run_id(storage: Path, request_id: str, key: str) -> str:
    from include.privacy_requests.store import layout
    from include.privacy_requests.store.store import RequestStore

    return RequestStore(storage, request_id, key).get(layout.REQUEST)["run_id"]
