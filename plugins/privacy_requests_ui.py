"""Airflow UI pages for privacy requests: an overview in the navigation and a page per request, linked from
each run; data from the metadata DB and each request's report.

Access follows the ``privacy_request`` DAG's permissions in Airflow's auth manager, as the REST API does:
every route needs a login (else 401) and permission to read the DAG's runs (else 403). Personal data (the
identity values and each vendor email as sent, which names them) is shown only to users who may also change
the DAG's runs (``PUT``: the people who handle requests); others see statuses, counts and deadlines.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

from include.privacy_requests import layout  # these two cost nothing: no Airflow import, no I/O
from include.privacy_requests.airflow.constants import DAG_ID, STORE_KEY_VARIABLE, checkpoint_order
from include.privacy_requests.airflow.storage import storage_root

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod

log = logging.getLogger(__name__)
STATUSES = ("queued", "running", "awaiting input", "success", "rejected", "failed")
# Who may see a run's personal data: those who may change the DAG's runs (clear, mark, note them), not
# every reader. Airflow has no permission of its own for a run's conf; this is the closest stricter one.
CONF_METHOD: ResourceMethod = "PUT"
# The dependency guards every route, those added later included; FastAPI's own docs routes would not be
# guarded by it, so there are none.
app = FastAPI(title="Privacy requests", docs_url=None, redoc_url=None, openapi_url=None,
              dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))])
_pages = Environment(loader=FileSystemLoader(Path(__file__).parent / "privacy_requests_templates"), autoescape=True)


def _config():
    from include.privacy_requests.config import current_config

    return current_config()


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
    path = storage_root(config) / request_id / layout.REPORT
    return json.loads(path.read_text()) if path.exists() else None


def may_see_conf(user: GetUserDep) -> bool:
    """Whether the user may see the runs' personal data: the auth manager's answer for CONF_METHOD on the
    DAG's runs (with the DAG's team, as ``requires_access_dag`` asks)."""
    from airflow.models.dag import DagModel

    details = DagDetails(id=DAG_ID, team_name=DagModel.get_team_name(DAG_ID))
    return get_auth_manager().is_authorized_dag(method=CONF_METHOD, access_entity=DagAccessEntity.RUN,
                                                details=details, user=user)


MaySeeConf = Annotated[bool, Depends(may_see_conf)]


def require_conf_access(allowed: MaySeeConf) -> None:
    """403 before anything is looked up, so a refusal says nothing about which runs exist."""
    if not allowed:
        raise HTTPException(status_code=403, detail="Forbidden: personal data needs permission to change "
                                                    f"the {DAG_ID} DAG's runs")


def _identity(run, full: bool) -> str:
    """The identity as given (``email: jane@example.com``), or only its types when it may not be seen."""
    identity = run.conf.get("identity")
    identity = identity if isinstance(identity, dict) else {}
    if full:
        return ", ".join(f"{kind}: {value}" for kind, value in identity.items()) or "-"
    return f"hidden ({', '.join(sorted(identity)) or '-'})"


def _rows(runs, personal: bool) -> list:
    """Overview rows; the identity masked (``j***@example.com``) for those who may see it, else hidden."""
    from include.privacy_requests.overview import request_id_of, request_row

    config = _config()
    order = checkpoint_order(config)
    now = datetime.now(UTC)
    rows = [request_row(config, run, _report(config, request_id_of(run)), order, now) for run in runs]
    if personal:
        return rows
    return [replace(row, identity=_identity(run, False)) for row, run in zip(rows, runs, strict=True)]


@app.get("/api/requests")
def list_requests(personal: MaySeeConf, status: str | None = None) -> list[dict[str, Any]]:
    """The overview as JSON, newest first; ``status`` filters (one of STATUSES)."""
    rows = [r for r in _rows(_runs(), personal) if status in (None, r.status)]
    return [{**r.__dict__, "received": r.received.isoformat(), "due": r.due.isoformat() if r.due else None}
            for r in rows]


@app.get("/", response_class=HTMLResponse)
def overview(personal: MaySeeConf, status: str | None = None) -> str:
    rows = [r for r in _rows(_runs(), personal) if status in (None, r.status)]
    return _pages.get_template("overview.html.j2").render(rows=rows, status=status, statuses=STATUSES)


@app.get("/requests/{run_id}", response_class=HTMLResponse)
def request_page(run_id: str, personal: MaySeeConf) -> str:
    """One request: the full identity and the vendor emails as sent only for those who may see them."""
    runs = _runs(run_id=run_id)
    if not runs:
        raise HTTPException(status_code=404, detail=f"no privacy request run '{run_id}'")
    config = _config()
    row = _rows(runs, personal)[0]
    report = _report(config, row.request_id) or {}
    order = {task_id: index for index, task_id in enumerate(checkpoint_order(config))}
    timeline = sorted(runs[0].tasks, key=lambda t: order.get(t.task_id, len(order)))
    return _pages.get_template("request.html.j2").render(
        row=row, report=report, timeline=timeline, personal=personal, identity=_identity(runs[0], personal),
        emails=_emails(config, row.request_id, bodies=personal))


@app.get("/requests/{run_id}/emails/{dataset}", response_class=HTMLResponse,
         dependencies=[Depends(require_conf_access)])
def email_as_sent(run_id: str, dataset: str) -> HTMLResponse:
    """The vendor email's HTML as sent (it names the identity); shown in a sandboxed frame on the page."""
    from include.privacy_requests.overview import request_id_of

    runs = _runs(run_id=run_id)
    emails = _emails(_config(), request_id_of(runs[0]), bodies=True) if runs else []
    sent = [m for m in emails if m["dataset"] == dataset]
    if not sent:
        raise HTTPException(status_code=404, detail=f"no email to '{dataset}' for run '{run_id}'")
    return HTMLResponse(sent[0]["html"], headers={"Content-Security-Policy": "sandbox", "Cache-Control": "no-store"})


def _emails(config, request_id: str, bodies: bool) -> list[dict[str, str]]:
    """Each vendor email sent (kept encrypted in the request's ledger); with its HTML as sent if ``bodies``."""
    from airflow.models.variable import Variable

    from include.privacy_requests.store import RequestStore

    key = Variable.get(STORE_KEY_VARIABLE, default_var=None)
    if not key:
        return []
    store = RequestStore(storage_root(config), request_id, key)
    emails = []
    for dataset in config.email_datasets:
        sent = store.get(layout.email_sent(dataset))
        body = store.get(layout.email_message(dataset)) if bodies else {"html": ""}
        if sent and body:
            emails.append({"dataset": dataset, "subject": sent["subject"], "to": ", ".join(sent["recipients"]),
                           "message_id": sent["message_id"], "time": sent["time"], "html": body["html"]})
    return emails


class RunNotes:
    """Listener: when a request's run ends, its note (shown in the grid view) summarizes the outcome.

    Why a short-lived thread that retries: the scheduler calls ``on_dag_run_success``/``failed`` inside its own
    transaction on that run, so writing the note in the same breath would wait on (or deadlock with) it. The
    alternatives do not exist in Airflow 3.3: task code has no metadata DB session (so ``finalize`` cannot set
    the note), and a task calling the REST API would need credentials of its own. The thread writes once the
    scheduler's transaction has committed, and gives up after 30 s with a warning (the note is a convenience:
    the report and the Privacy requests pages carry the same outcome).
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
