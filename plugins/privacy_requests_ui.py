"""Airflow UI pages for privacy requests: an overview in the navigation and a page per request, linked from
each run; data from the metadata DB and each request's report.

Access follows the ``privacy_request`` DAG's permissions in Airflow's auth manager, as the REST API does:
every route needs a login (else 401) and permission to read the DAG's runs (else 403). Personal data (the
identity values and each vendor email as sent, which names them) is shown only to users who may also change
the DAG's runs (``PUT``: the people who handle requests); others see statuses, counts and deadlines.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

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
    """privacy_request (or ``dag_id``) runs with their task states, newest first; of each conf only the fields
    the pages show (a batch's subjects are never loaded)."""
    from include.privacy_requests.airflow.runs import BATCH_FIELDS, REQUEST_FIELDS, read_runs

    fields = BATCH_FIELDS if dag_id == BATCH_DAG_ID else (*REQUEST_FIELDS, *sorted(_config().graph.identity_keys))
    return read_runs(dag_id, fields, run_id=run_id, limit=limit)


def _reader():
    """The pages' reads of storage (deliverables/pages.py), with the store key when one is set."""
    from airflow.models.variable import Variable

    from include.privacy_requests.deliverables.pages import StoreReader

    global _cached_reader
    config = _config()
    key = Variable.get(STORE_KEY_VARIABLE, default_var=None)
    if _cached_reader is None or _cached_reader.config is not config or _cached_reader.key != key:
        _cached_reader = StoreReader(config, storage_root(config), key)
    return _cached_reader


_cached_reader = None


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
    reader = _reader()
    rows = [request_row(config, run, reader.report(request_id_of(run)), order, now,
                        **reader.clock_and_vendors(request_id_of(run))) for run in runs]
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
    reader = _reader()
    return [batch_row(config, run, reader.batch_report(batch_id_of(run)), order) for run in runs]


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
    report = _reader().batch_report(batch_id_of(run)) or {}
    subjects = batch_subjects(report)
    offset, limit = max(offset, 0), min(max(limit, 1), 5000)
    return _pages.get_template("batch.html.j2").render(
        row=_batch_rows([run])[0], report=report, subjects=subjects[offset:offset + limit], total=len(subjects),
        offset=offset, limit=limit)


@app.get("/batches/{run_id}/requests/{request_id}", response_class=HTMLResponse, dependencies=_BATCH_ACCESS)
def batch_subject_page(run_id: str, request_id: str, personal: MaySeeConf) -> str:
    """A batch subject's request page: its report, and the batch run's checkpoints (the same tasks)."""
    from include.privacy_requests.deliverables.overview import batch_id_of, belongs_to_batch, request_row, subject_run

    batch = _one_batch(run_id)
    config = _config()
    report = _reader().report(request_id)
    if not belongs_to_batch(report, batch_id_of(batch)):
        raise HTTPException(status_code=404, detail=f"no report of a subject '{request_id}' of batch run '{run_id}'")
    run = subject_run(batch, request_id)
    order = checkpoint_order(config)
    row = request_row(config, run, report, order, datetime.now(UTC))
    position = {task_id: index for index, task_id in enumerate(order)}
    timeline = sorted(run.tasks, key=lambda t: position.get(t.task_id, len(position)))
    reader = _reader()
    return _pages.get_template("request.html.j2").render(
        row=row, report=report, timeline=timeline, personal=personal, identity="kept with the batch's subjects",
        emails=[], batch=_batch_rows([batch])[0],
        certificate=f"./{quote(request_id)}/certificate" if reader.has_certificate(request_id) else False)


@app.get("/batches/{run_id}/requests/{request_id}/certificate", response_class=HTMLResponse,
         dependencies=_BATCH_ACCESS)
def batch_subject_certificate(run_id: str, request_id: str) -> HTMLResponse:
    """A batch subject's certificate, as the batch's finalize wrote it from the subject's report; only for a
    subject of that batch (no personal data: the same readers as the subject's page)."""
    from include.privacy_requests.deliverables.overview import batch_id_of, belongs_to_batch

    batch = _one_batch(run_id)
    reader = _reader()
    path = reader.deliverable(request_id, layout.CERTIFICATE)
    if not belongs_to_batch(reader.report(request_id), batch_id_of(batch)) or path is None or not path.exists():
        raise HTTPException(status_code=404, detail=f"no certificate of a subject '{request_id}' of batch run "
                                                    f"'{run_id}' (written when the batch completes)")
    return HTMLResponse(path.read_text(), headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


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
    reader = _reader()
    owner = reader.owner(row.request_id)
    if owner is not None and owner != run_id:  # a run refused for reusing a request id: nothing of the other's
        return _pages.get_template("request.html.j2").render(
            row=replace(row, status="failed"), report={}, timeline=timeline, personal=personal,
            identity=_identity(runs[0], personal), emails=[], packages=[], changes=None, certificate=False,
            owner=owner)
    report = reader.report(row.request_id) or {}
    followed = report.get("after_dry_run")
    return _pages.get_template("request.html.j2").render(
        row=row, report=report, timeline=timeline, personal=personal, identity=_identity(runs[0], personal),
        emails=reader.emails(row.request_id, bodies=personal), packages=reader.packages(row.request_id),
        changes=compare(reader.report(followed) or {}, report) if isinstance(followed, str) else None,
        certificate=reader.has_certificate(row.request_id), owner=None)


def _own_request_id(run_id: str) -> str | None:
    """The run's request id when the run owns it; None for no such run, or a run refused for reusing
    another's id (so no route serves that other request's files for it)."""
    from include.privacy_requests.deliverables.overview import request_id_of

    runs = _runs(run_id=run_id)
    return _reader().own_request_id(run_id, request_id_of(runs[0])) if runs else None


@app.get("/requests/{run_id}/certificate", response_class=HTMLResponse)
def certificate(run_id: str) -> HTMLResponse:
    """The request's certificate as finalize wrote it (no personal data: the same readers as the page). It
    needs nothing from outside the page, so the policy forbids everything but its inline style."""

    request_id = _own_request_id(run_id)
    path = _reader().deliverable(request_id, layout.CERTIFICATE) if request_id else None
    if path is None or not path.exists():
        raise HTTPException(status_code=404, detail=f"no certificate for run '{run_id}' (written when it completes)")
    return HTMLResponse(path.read_text(), headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


@app.get("/requests/{run_id}/emails/{dataset}", response_class=HTMLResponse,
         dependencies=[Depends(require_conf_access)])
def email_as_sent(run_id: str, dataset: str) -> HTMLResponse:
    """The vendor email's HTML as sent, or as a dry run rendered it (it names the identity); shown in a sandboxed
    frame on the page."""

    request_id = _own_request_id(run_id)
    emails = _reader().emails(request_id, bodies=True) if request_id else []
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


@app.get("/requests/{run_id}/access-package/{fmt}", dependencies=[Depends(require_conf_access)])
def access_package(run_id: str, fmt: str) -> StreamingResponse:
    """One file of the request's access package (it holds the subject's data), streamed from storage."""

    if fmt not in PACKAGE_RESPONSES:
        raise HTTPException(status_code=404, detail=f"no access package format '{fmt}'; formats: "
                                                    f"{', '.join(PACKAGE_RESPONSES)}")
    request_id = _own_request_id(run_id)
    path = _reader().deliverable(request_id, layout.PACKAGE_FILES[fmt]) if request_id else None
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

    request_id = request_id_of(RunInfo(run_id, conf, "", datetime.now(UTC)))
    for _ in range(30):
        time.sleep(1)
        try:
            note = run_note(_reader().report(request_id))
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
