"""The page a vendor opens from the confirmation link in an erasure email: no Airflow login, the signed token
is the credential (vendor_confirmation.py). It shows what the vendor confirms (the organization, the request
reference, when the email was sent; no personal data) and records their answer as the answer to the waiting
``vendor_confirmation.<dataset>`` task, as ``PATCH .../hitlDetails`` would for a person logged in.

A forged, expired or replayed token, or one for a round that is over, gets 403 and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

from include.privacy_requests.airflow.constants import CONFIRM_GROUP, CONFIRM_PAGE, DAG_ID, STORE_KEY_VARIABLE
from include.privacy_requests.airflow.storage import storage_root
from include.privacy_requests.store import layout  # costs nothing: no Airflow import, no I/O

log = logging.getLogger(__name__)
PREFIX, _, PAGE = CONFIRM_PAGE.rpartition("/")
# No dependency: anyone holding a link may open it; the token decides. No docs routes either.
app = FastAPI(title="Vendor confirmation", docs_url=None, redoc_url=None, openapi_url=None)
_pages = Environment(loader=FileSystemLoader(Path(__file__).parent / "privacy_requests_templates"), autoescape=True)
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
REFUSED = "This confirmation link is not valid: it may have expired, been answered already, or been replaced " \
          "by a newer one (see the latest email)."


@dataclass(frozen=True)
class VendorUser:
    """The responder Airflow records for an answer given through the link."""

    dataset: str
    vendor: str

    def get_id(self) -> str:
        return f"vendor:{self.dataset}"

    def get_name(self) -> str:
        return f"{self.vendor} (confirmation link)"


def _open(token: str) -> tuple[Any, Any, dict[str, Any], Any]:
    """(config, claims, email sent, store) for a token that may answer; else 403, saying only that it may not."""
    from airflow.models.variable import Variable

    from include.privacy_requests.errors import RequestError
    from include.privacy_requests.model.loading import current_config
    from include.privacy_requests.outbound.vendor_confirmation import TokenRefused, answerable, read_token, signing_key
    from include.privacy_requests.store.store import RequestStore

    key = Variable.get(STORE_KEY_VARIABLE, default_var=None)
    if not key:
        raise HTTPException(status_code=503, detail="privacy requests are not set up on this Airflow")
    config = current_config()
    try:
        claims = read_token(signing_key(key), token, datetime.now(UTC))
        target = config.mapping(claims.dataset).email if claims.dataset in config.datasets else None
        if target is None or not target.confirm:
            raise TokenRefused(f"'{claims.dataset}' is not a vendor that confirms")
        store = RequestStore(storage_root(config), claims.request_id, key)
        sent = answerable(store, claims)
    except (TokenRefused, RequestError, ValueError, KeyError, TypeError) as exc:
        log.info("Confirmation link refused: %s", exc)
        raise HTTPException(status_code=403, detail=REFUSED) from None
    return config, claims, sent, store


@app.get(f"/{PAGE}", response_class=HTMLResponse)
def confirmation_page(token: str = "") -> HTMLResponse:
    from include.privacy_requests.outbound.vendor_confirmation import MAX_NOTE_LENGTH, OPTIONS

    config, claims, sent, _ = _open(token)
    target = config.mapping(claims.dataset).email
    return HTMLResponse(_pages.get_template("vendor_confirmation.html.j2").render(
        organization=config.settings.organization, vendor=target.vendor_name or claims.dataset,
        request_id=claims.request_id, sent=sent["time"][:16].replace("T", " "), message_id=sent["message_id"],
        options=OPTIONS, token=token, max_note=MAX_NOTE_LENGTH, done=None), headers=_HEADERS)


@app.post(f"/{PAGE}", response_class=HTMLResponse)
def confirm(token: str = Form(""), answer: str = Form(""), note: str = Form("")) -> HTMLResponse:
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from include.privacy_requests.errors import RequestError
    from include.privacy_requests.outbound.vendor_confirmation import OPTIONS, check_note

    config, claims, _, store = _open(token)
    if answer not in OPTIONS:
        raise HTTPException(status_code=400, detail=f"answer must be one of: {', '.join(OPTIONS)}")
    try:
        checked = check_note(note)
    except RequestError as exc:  # a control character (a NUL would fail in PostgreSQL) or too long
        raise HTTPException(status_code=400, detail=str(exc)) from None
    target = config.mapping(claims.dataset).email
    run_id = store.get(layout.REQUEST)["run_id"]
    payload = UpdateHITLDetailPayload(chosen_options=[answer], params_input={"note": checked})
    task_id = f"{CONFIRM_GROUP}.{claims.dataset}"
    try:
        with create_session() as session:
            # Only while the task waits: an answer stored while it is between two waits (sending a reminder)
            # would be wiped when it asks again. The row lock keeps a clear or a resume from slipping in between.
            ti = session.scalar(select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id,
                TaskInstance.map_index == -1).with_for_update())
            detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id)) if ti else None
            if detail is not None and detail.response_received:
                raise HTTPException(status_code=409)  # answered, the task not yet resumed: a replay
            if ti is None or ti.state != TaskInstanceState.AWAITING_INPUT:
                raise HTTPException(status_code=404)
            update_hitl_detail(dag_id=DAG_ID, dag_run_id=run_id, task_id=task_id,
                               update_hitl_detail_payload=payload, session=session, map_index=-1,
                               user=VendorUser(claims.dataset, target.vendor_name or claims.dataset))
    except HTTPException as exc:
        if exc.status_code == 409:  # answered already (by staff, or this link a moment ago): a replay
            raise HTTPException(status_code=403, detail=REFUSED) from None
        if exc.status_code == 404:  # the task is not waiting right now: nothing recorded
            raise HTTPException(status_code=409, detail="We are not ready for your answer yet: please try again "
                                                        "in a few minutes.") from None
        raise
    log.info("Vendor '%s' answered request %s through the link", claims.dataset, claims.request_id)
    return HTMLResponse(_pages.get_template("vendor_confirmation.html.j2").render(
        organization=config.settings.organization, vendor=target.vendor_name or claims.dataset,
        request_id=claims.request_id, done=answer), headers=_HEADERS)


class PrivacyVendorConfirmationPlugin(AirflowPlugin):
    name = "privacy_vendor_confirmation"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "Vendor confirmation"}]
