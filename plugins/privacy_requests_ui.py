"""Airflow UI pages for privacy requests: an overview in the navigation and a page per request, linked from
each run. FastAPI routes behind Airflow's login; data from the metadata DB and each request's report."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

DAG_ID = "privacy_request"
log = logging.getLogger(__name__)
STATUSES = ("queued", "running", "awaiting input", "success", "rejected", "failed")
app = FastAPI(title="Privacy requests")
_pages = Environment(loader=FileSystemLoader(Path(__file__).parent / "privacy_requests_templates"), autoescape=True)


def _config():
    from include.privacy_requests.config import load_config

    return load_config()


def _runs(run_id: str | None = None, limit: int = 500):
    """privacy_request runs with their task states, newest first."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from include.privacy_requests.overview import RunInfo, TaskState

    with create_session() as session:
        query = session.query(DagRun).filter(DagRun.dag_id == DAG_ID)
        if run_id is not None:
            query = query.filter(DagRun.run_id == run_id)
        runs = query.order_by(DagRun.id.desc()).limit(limit).all()
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == DAG_ID,
                                                 TaskInstance.run_id.in_([r.run_id for r in runs])).all()
        tasks: dict[str, list[TaskState]] = {}
        for ti in tis:
            tasks.setdefault(ti.run_id, []).append(
                TaskState(ti.task_id, ti.state, ti.try_number, ti.start_date, ti.end_date))
        return [RunInfo(r.run_id, dict(r.conf or {}), str(r.state),
                        r.queued_at or r.start_date or r.run_after, tasks.get(r.run_id, [])) for r in runs]


def _report(config, request_id: str) -> dict[str, Any] | None:
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(config.storage) / request_id / "report.json"
    return json.loads(path.read_text()) if path.exists() else None


def _rows(runs) -> list:
    from include.privacy_requests.dag_factory import checkpoint_order
    from include.privacy_requests.overview import request_id_of, request_row

    config = _config()
    order = checkpoint_order(config)
    now = datetime.now(UTC)
    return [request_row(config, run, _report(config, request_id_of(run)), order, now) for run in runs]


@app.get("/api/requests")
def list_requests(user: GetUserDep, status: str | None = None) -> list[dict[str, Any]]:
    """The overview as JSON, newest first; ``status`` filters (one of STATUSES)."""
    rows = [r for r in _rows(_runs()) if status in (None, r.status)]
    return [{**r.__dict__, "received": r.received.isoformat(), "due": r.due.isoformat() if r.due else None}
            for r in rows]


@app.get("/", response_class=HTMLResponse)
def overview(user: GetUserDep, status: str | None = None) -> str:
    rows = [r for r in _rows(_runs()) if status in (None, r.status)]
    return _pages.get_template("overview.html.j2").render(rows=rows, status=status, statuses=STATUSES)


@app.get("/requests/{run_id}", response_class=HTMLResponse)
def request_page(run_id: str, user: GetUserDep) -> str:
    runs = _runs(run_id=run_id)
    if not runs:
        raise HTTPException(status_code=404, detail=f"no privacy request run '{run_id}'")
    from include.privacy_requests.dag_factory import checkpoint_order

    config = _config()
    row = _rows(runs)[0]
    report = _report(config, row.request_id) or {}
    order = {task_id: index for index, task_id in enumerate(checkpoint_order(config))}
    timeline = sorted(runs[0].tasks, key=lambda t: order.get(t.task_id, len(order)))
    return _pages.get_template("request.html.j2").render(
        row=row, report=report, timeline=timeline, emails=_emails(config, row.request_id))


def _emails(config, request_id: str) -> list[dict[str, str]]:
    """Each vendor email exactly as it was sent (kept encrypted in the request's ledger)."""
    from airflow.models.variable import Variable
    from airflow.sdk import ObjectStoragePath

    from include.privacy_requests.operators import STORE_KEY_VARIABLE
    from include.privacy_requests.store import RequestStore

    key = Variable.get(STORE_KEY_VARIABLE, default_var=None)
    if not key:
        return []
    store = RequestStore(ObjectStoragePath(config.storage), request_id, key)
    emails = []
    for dataset in config.email_datasets:
        sent = store.get(f"ledger/email.{dataset}.json")
        body = store.get(f"ledger/email.{dataset}.message.json")
        if sent and body:
            emails.append({"dataset": dataset, "subject": sent["subject"], "to": ", ".join(sent["recipients"]),
                           "message_id": sent["message_id"], "time": sent["time"], "html": body["html"]})
    return emails


class RunNotes:
    """Listener: when a request's run ends, its note (shown in the grid view) summarizes the outcome.

    The note is written from a short-lived thread: the scheduler calls listeners inside its own
    transaction on that run, so writing in the same breath would wait on (or deadlock with) it.
    """

    @hookimpl
    def on_dag_run_success(self, dag_run, msg: str) -> None:
        self._later(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg: str) -> None:
        self._later(dag_run)

    @staticmethod
    def _later(dag_run) -> None:
        if dag_run.dag_id == DAG_ID:
            threading.Thread(target=_write_note, args=(dag_run.run_id, dict(dag_run.conf or {})), daemon=True).start()


def _write_note(run_id: str, conf: dict[str, Any]) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from include.privacy_requests.overview import RunInfo, request_id_of, run_note

    config = _config()
    request_id = request_id_of(RunInfo(run_id, conf, "", datetime.now(UTC)))
    for _ in range(30):
        time.sleep(1)
        try:
            note = run_note(_report(config, request_id))
            with create_session() as session:
                dag_run = session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=run_id).one()
                dag_run.note = note
            return
        except Exception:  # the scheduler may still hold the run: try again shortly
            log.debug("Run note for %s not written yet", run_id, exc_info=True)
    log.warning("Could not write the run note of %s", run_id)


class PrivacyRequestsPlugin(AirflowPlugin):
    name = "privacy_requests"
    listeners = [RunNotes()]
    fastapi_apps = [{"app": app, "url_prefix": "/privacy", "name": "Privacy requests"}]
    external_views = [
        {"name": "Privacy requests", "href": "/privacy/", "destination": "nav", "category": "browse",
         "url_route": "privacy-requests"},
        {"name": "Privacy request", "href": "/privacy/requests/{RUN_ID}", "destination": "dag_run",
         "url_route": "privacy-request"},
    ]
