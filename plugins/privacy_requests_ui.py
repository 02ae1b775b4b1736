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
from fastapi.responses import HTMLResponse, StreamingResponse
from jinja2 import Environment, FileSystemLoader

from include.privacy_requests.airflow.constants import BATCH_DAG_ID, DAG_ID, STORE_KEY_VARIABLE, checkpoint_order
from include.privacy_requests.airflow.storage import storage_root
from include.privacy_requests.store import layout  # these two cost nothing: no Airflow import, no I/O

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod

log = logging.getLogger(__name__)
STATUSES = ("queued", "running", "awaiting input", "awaiting vendor", "success", "awaiting vendor digest",
            "rejected", "failed")
# Who may see a run's personal data: those who may change the DAG's runs (clear, mark, note them), not
# every reader. Airflow has no permission of its own for a run's conf; this is the closest stricter one.
CONF_METHOD: ResourceMethod = "PUT"
# The dependency guards every route, those added later included; FastAPI's own docs routes would not be
# guarded by it, so there are none.
app = FastAPI(title="Privacy requests", docs_url=None, redoc_url=None, openapi_url=None,
              dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))])
_pages = Environment(loader=FileSystemLoader(Path(__file__).parent / "privacy_requests_templates"), autoescape=True)


def _config():
    from include.privacy_requests.model.loading import current_config

    return current_config()


def _runs(run_id: str | None = None, limit: int = 500, dag_id: str = DAG_ID):
    """privacy_request (or ``dag_id``) runs with their task states, newest first."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from include.privacy_requests.deliverables.overview import RunInfo, TaskState

    with create_session() as session:
        query = session.query(DagRun).filter(DagRun.dag_id == dag_id)
        if run_id is not None:
            query = query.filter(DagRun.run_id == run_id)
        runs = query.order_by(DagRun.id.desc()).limit(limit).all()
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                 TaskInstance.run_id.in_([r.run_id for r in runs])).all()
        tasks: dict[str, list[TaskState]] = {}
        for ti in tis:
            tasks.setdefault(ti.run_id, []).append(
                TaskState(ti.task_id, ti.state, ti.try_number, ti.start_date, ti.end_date))
        return [RunInfo(r.run_id, dict(r.conf or {}), str(r.state),
                        r.queued_at or r.start_date or r.run_after, tasks.get(r.run_id, [])) for r in runs]


def _report(config, request_id: str) -> dict[str, Any] | None:
    path = _deliverable(config, request_id, layout.REPORT)
    return json.loads(path.read_text()) if path.exists() else None


def _batch_report(config, batch_id: str) -> dict[str, Any] | None:
    path = storage_root(config) / layout.batch_report(batch_id)
    return json.loads(path.read_text()) if path.exists() else None


def may_see_conf(user: GetUserDep) -> bool:
    """Whether the user may see the runs' personal data: the auth manager's answer for CONF_METHOD on the
    DAG's runs (with the DAG's team, as ``requires_access_dag`` asks)."""
    from airflow.models.dag import DagModel

    details = DagDetails(id=DAG_ID, team_name=DagModel.get_team_name(DAG_ID))
    return get_auth_manager().is_authorized_dag(method=CONF_METHOD, access_entity=DagAccessEntity.RUN,
                                                details=details, user=user)


MaySeeConf = Annotated[bool, Depends(may_see_conf)]


def may_read_batches(user: GetUserDep) -> bool:
    """Whether the user may read the batch DAG's runs: batches are listed only to them."""
    from airflow.models.dag import DagModel

    details = DagDetails(id=BATCH_DAG_ID, team_name=DagModel.get_team_name(BATCH_DAG_ID))
    return get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, details=details,
                                                user=user)


MayReadBatches = Annotated[bool, Depends(may_read_batches)]
# Batch pages need the batch DAG's runs too, besides the app's own check on privacy_request.
_BATCH_ACCESS = [Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=BATCH_DAG_ID))]


def require_conf_access(allowed: MaySeeConf) -> None:
    """403 before anything is looked up, so a refusal says nothing about which runs exist."""
    if not allowed:
        raise HTTPException(status_code=403, detail="Forbidden: personal data needs permission to change "
                                                    f"the {DAG_ID} DAG's runs")


def _identity(run, full: bool) -> str:
    """The identity as given (``email: jane@example.com``), or only its types when it may not be seen."""
    from include.privacy_requests.request.request import conf_identity

    identity = conf_identity(run.conf, _config().graph.identity_keys)
    if full:
        return ", ".join(f"{kind}: {value}" for kind, value in identity.items()) or "-"
    return f"hidden ({', '.join(sorted(identity)) or '-'})"


def _rows(runs, personal: bool) -> list:
    """Overview rows; the identity masked (``j***@example.com``) for those who may see it, else hidden."""
    from include.privacy_requests.deliverables.overview import request_id_of, request_row

    config = _config()
    order = checkpoint_order(config)
    now = datetime.now(UTC)
    rows = [request_row(config, run, _report(config, request_id_of(run)), order, now,
                        **_clock_and_vendors(config, request_id_of(run))) for run in runs]
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
def overview(personal: MaySeeConf, batches: MayReadBatches, status: str | None = None) -> str:
    rows = [r for r in _rows(_runs(), personal) if status in (None, r.status)]
    return _pages.get_template("overview.html.j2").render(rows=rows, status=status, statuses=STATUSES,
                                                          batches=_batch_rows(_batch_runs()) if batches else None)


def _batch_runs(run_id: str | None = None):
    return _runs(run_id=run_id, dag_id=BATCH_DAG_ID)


def _batch_rows(runs) -> list:
    from include.privacy_requests.deliverables.overview import batch_id_of, batch_row

    config = _config()
    order = checkpoint_order(config)
    return [batch_row(config, run, _batch_report(config, batch_id_of(run)), order) for run in runs]


@app.get("/api/batches", dependencies=_BATCH_ACCESS)
def list_batches() -> list[dict[str, Any]]:
    """The batches as JSON, newest first: id, policy, status, subjects and rejected subjects."""
    return [{**r.__dict__, "received": r.received.isoformat()} for r in _batch_rows(_batch_runs())]


def _one_batch(run_id: str):
    runs = _batch_runs(run_id)
    if not runs:
        raise HTTPException(status_code=404, detail=f"no batch run '{run_id}'")
    return runs[0]


@app.get("/batches/{run_id}", response_class=HTMLResponse, dependencies=_BATCH_ACCESS)
def batch_page(run_id: str, offset: int = 0, limit: int = 500) -> str:
    """One batch: its counts and its subjects (``limit`` at a time), each linking to its request page."""
    from include.privacy_requests.deliverables.overview import batch_id_of, batch_subjects

    run = _one_batch(run_id)
    report = _batch_report(_config(), batch_id_of(run)) or {}
    subjects = batch_subjects(report)
    offset, limit = max(offset, 0), min(max(limit, 1), 5000)
    return _pages.get_template("batch.html.j2").render(
        row=_batch_rows([run])[0], report=report, subjects=subjects[offset:offset + limit], total=len(subjects),
        offset=offset, limit=limit)


@app.get("/batches/{run_id}/requests/{request_id}", response_class=HTMLResponse, dependencies=_BATCH_ACCESS)
def batch_subject_page(run_id: str, request_id: str, personal: MaySeeConf) -> str:
    """A batch subject's request page: its report, and the batch run's checkpoints (the same tasks)."""
    from include.privacy_requests.deliverables.overview import batch_id_of, belongs_to_batch, request_row, subject_run
    from include.privacy_requests.store.store import is_request_folder

    batch = _one_batch(run_id)
    config = _config()
    report = _report(config, request_id) if is_request_folder(request_id) else None
    if not belongs_to_batch(report, batch_id_of(batch)):
        raise HTTPException(status_code=404, detail=f"no report of a subject '{request_id}' of batch run '{run_id}'")
    run = subject_run(batch, request_id)
    order = checkpoint_order(config)
    row = request_row(config, run, report, order, datetime.now(UTC))
    position = {task_id: index for index, task_id in enumerate(order)}
    timeline = sorted(run.tasks, key=lambda t: position.get(t.task_id, len(position)))
    return _pages.get_template("request.html.j2").render(
        row=row, report=report, timeline=timeline, personal=personal, identity="kept with the batch's subjects",
        emails=[], batch=_batch_rows([batch])[0])


@app.get("/requests/{run_id}", response_class=HTMLResponse)
def request_page(run_id: str, personal: MaySeeConf) -> str:
    """One request: the full identity and the vendor emails as sent only for those who may see them; a dry
    run's plan, or for a run that follows one, what changed between plan and execution."""
    from include.privacy_requests.steps.erasure_plan import compare

    runs = _runs(run_id=run_id)
    if not runs:
        raise HTTPException(status_code=404, detail=f"no privacy request run '{run_id}'")
    config = _config()
    row = _rows(runs, personal)[0]
    order = {task_id: index for index, task_id in enumerate(checkpoint_order(config))}
    timeline = sorted(runs[0].tasks, key=lambda t: order.get(t.task_id, len(order)))
    owner = _owner(config, row.request_id)
    if owner is not None and owner != run_id:  # a run refused for reusing a request id: nothing of the other's
        return _pages.get_template("request.html.j2").render(
            row=replace(row, status="failed"), report={}, timeline=timeline, personal=personal,
            identity=_identity(runs[0], personal), emails=[], packages=[], changes=None, certificate=False,
            owner=owner)
    report = _report(config, row.request_id) or {}
    followed = report.get("after_dry_run")
    return _pages.get_template("request.html.j2").render(
        row=row, report=report, timeline=timeline, personal=personal, identity=_identity(runs[0], personal),
        emails=_emails(config, row.request_id, bodies=personal), packages=_packages(config, row.request_id),
        changes=compare(_report(config, followed) or {}, report) if followed else None,
        certificate=_deliverable(config, row.request_id, layout.CERTIFICATE).exists(), owner=None)


def _owner(config, request_id: str) -> str | None:
    """The run that owns a request id (``request.json``, claimed once), or None where nobody has claimed it
    yet or the store key is not set."""
    store = _store(config, request_id)
    try:
        record = store.get(layout.REQUEST) if store is not None else None
    except Exception:  # a store written with another key: the page shows what Airflow holds
        log.debug("No request record for %s", request_id, exc_info=True)
        return None
    return record.get("run_id") if record else None


def _own_request_id(config, run) -> str | None:
    """The run's request id when the run owns it; None for a run refused for reusing another's id, so no
    route serves that other request's files for it."""
    from include.privacy_requests.deliverables.overview import request_id_of

    request_id = request_id_of(run)
    owner = _owner(config, request_id)
    return request_id if owner in (None, run.run_id) else None


@app.get("/requests/{run_id}/certificate", response_class=HTMLResponse)
def certificate(run_id: str) -> HTMLResponse:
    """The request's certificate as finalize wrote it (no personal data: the same readers as the page). It
    needs nothing from outside the page, so the policy forbids everything but its inline style."""

    runs = _runs(run_id=run_id)
    config = _config()
    request_id = _own_request_id(config, runs[0]) if runs else None
    path = _deliverable(config, request_id, layout.CERTIFICATE) if request_id else None
    if path is None or not path.exists():
        raise HTTPException(status_code=404, detail=f"no certificate for run '{run_id}' (written when it completes)")
    return HTMLResponse(path.read_text(), headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def _deliverable(config, request_id: str, name: str):

    return storage_root(config) / request_id / name


@app.get("/requests/{run_id}/emails/{dataset}", response_class=HTMLResponse,
         dependencies=[Depends(require_conf_access)])
def email_as_sent(run_id: str, dataset: str) -> HTMLResponse:
    """The vendor email's HTML as sent, or as a dry run rendered it (it names the identity); shown in a sandboxed
    frame on the page."""

    runs = _runs(run_id=run_id)
    config = _config()
    request_id = _own_request_id(config, runs[0]) if runs else None
    emails = _emails(config, request_id, bodies=True) if request_id else []
    sent = [m for m in emails if m["dataset"] == dataset]
    if not sent:
        raise HTTPException(status_code=404, detail=f"no email to '{dataset}' for run '{run_id}'")
    return HTMLResponse(sent[0]["html"], headers={"Content-Security-Policy": "sandbox", "Cache-Control": "no-store"})


# What a browser gets for each format of the access package: its type, and whether it opens or downloads.
# The HTML opens in place under a policy that allows its inline style and nothing else (no script, no request).
PACKAGE_RESPONSES = {
    "html": ("text/html; charset=utf-8", "inline"),
    "json": ("application/json", "attachment"),
    "csv": ("application/zip", "attachment"),
}
PACKAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox; base-uri 'none'; form-action 'none'"


def _packages(config, request_id: str) -> list[dict[str, str]]:
    """The access package's files that exist for a request, by format."""
    return [{"format": fmt, "file": name} for fmt, name in layout.PACKAGE_FILES.items()
            if _deliverable(config, request_id, name).exists()]


@app.get("/requests/{run_id}/access-package/{fmt}", dependencies=[Depends(require_conf_access)])
def access_package(run_id: str, fmt: str) -> StreamingResponse:
    """One file of the request's access package (it holds the subject's data), streamed from storage."""

    if fmt not in PACKAGE_RESPONSES:
        raise HTTPException(status_code=404, detail=f"no access package format '{fmt}'; formats: "
                                                    f"{', '.join(PACKAGE_RESPONSES)}")
    runs = _runs(run_id=run_id)
    config = _config()
    request_id = _own_request_id(config, runs[0]) if runs else None
    path = _deliverable(config, request_id, layout.PACKAGE_FILES[fmt]) if request_id else None
    if path is None or not path.exists():
        raise HTTPException(status_code=404, detail=f"no {fmt} access package for run '{run_id}'")
    media_type, disposition = PACKAGE_RESPONSES[fmt]

    def chunks():
        with path.open("rb") as fh:
            while block := fh.read(1 << 16):
                yield block

    return StreamingResponse(chunks(), media_type=media_type, headers={
        "Content-Disposition": f'{disposition}; filename="{layout.PACKAGE_FILES[fmt]}"',
        "Content-Security-Policy": PACKAGE_CSP, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _store(config, request_id: str):
    """The request's store, or None where the store key is not set (the pages still show what Airflow holds)."""
    from airflow.models.variable import Variable

    from include.privacy_requests.store.store import RequestStore

    key = Variable.get(STORE_KEY_VARIABLE, default_var=None)
    return RequestStore(storage_root(config), request_id, key) if key else None


def _clock_and_vendors(config, request_id: str) -> dict[str, Any]:
    """The deadline extensions and the vendors' confirmations, from the request's store (no personal data)."""
    from include.privacy_requests.outbound.vendor_confirmation import vendor_responses
    from include.privacy_requests.request.statutory_clock import extensions

    store = _store(config, request_id)
    if store is None:
        return {}
    try:
        return {"extensions": extensions(store), "vendors": vendor_responses(config, store)}
    except Exception:  # a request id no store can hold, or a store written with another key: show the rest
        log.debug("No clock or vendor answers for %s", request_id, exc_info=True)
        return {}


def _emails(config, request_id: str, bodies: bool) -> list[dict[str, str]]:
    """Each vendor email sent (kept encrypted in the request's ledger), or rendered and not sent by a dry run;
    with its HTML if ``bodies``."""
    from airflow.models.variable import Variable

    from include.privacy_requests.store.store import RequestStore

    key = Variable.get(STORE_KEY_VARIABLE, default_var=None)
    if not key:
        return []
    store = RequestStore(storage_root(config), request_id, key)
    emails = []
    for dataset in config.email_datasets:
        sent = store.get(layout.email_sent(dataset))
        body = store.get(layout.email_message(dataset)) if bodies else {"html": ""}
        rendered = None if sent else store.get(layout.dry_run_email(dataset))
        if sent and body:
            emails.append({"dataset": dataset, "subject": sent["subject"], "to": ", ".join(sent["recipients"]),
                           "message_id": sent["message_id"], "time": sent["time"], "html": body["html"]})
        elif rendered:
            emails.append({"dataset": dataset, "subject": rendered["subject"], "to": ", ".join(rendered["recipients"]),
                           "message_id": None, "time": rendered["time"], "html": rendered["html"] if bodies else ""})
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

    from include.privacy_requests.deliverables.overview import RunInfo, request_id_of, run_note

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
