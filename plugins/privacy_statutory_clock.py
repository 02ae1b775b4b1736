"""A request's legal deadline extended, with a reason, over REST: ``PUT /privacy-deadlines/requests/{run_id}``
with ``{"reason": "...", "months": 1}`` (GDPR, up to two further months in all) or ``{"reason": "...",
"days": 45}`` (CCPA, once). It needs permission to change the privacy_request DAG's runs (``PUT``), as the
identity routes of the Privacy requests pages do; the extension is an audit event in the request's store and
shows on the overview. What the regulation does not allow gets 400 naming why, and nothing is written.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Body, Depends, FastAPI, HTTPException

from include.privacy_requests.airflow.constants import DAG_ID, STORE_KEY_VARIABLE
from include.privacy_requests.airflow.storage import storage_root

log = logging.getLogger(__name__)
app = FastAPI(title="Privacy request deadlines", docs_url=None, redoc_url=None, openapi_url=None,
              dependencies=[Depends(requires_access_dag("PUT", DagAccessEntity.RUN, param_dag_id=DAG_ID))])


@app.put("/requests/{run_id}")
def extend_deadline(run_id: str, user: GetUserDep, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """The extension granted (amount, reason, who, the due date before and after). A run refused for reusing
    another run's request id gets 409 and changes nothing: the id is that other request's."""
    from airflow.models.variable import Variable

    from include.privacy_requests.airflow.runs import read_runs
    from include.privacy_requests.deliverables.overview import request_id_of
    from include.privacy_requests.deliverables.pages import NoStoreKey, StoreReader
    from include.privacy_requests.errors import ForeignRequestError, RequestError
    from include.privacy_requests.model.loading import current_config
    from include.privacy_requests.request.report import rewrite_report
    from include.privacy_requests.request.statutory_clock import extend

    unknown = sorted(set(body) - {"reason", "months", "days"})
    if unknown:
        raise HTTPException(status_code=400, detail=f"unknown field(s) {', '.join(unknown)}: give 'reason' and "
                                                    "'months' (GDPR) or 'days' (CCPA)")
    runs = read_runs(DAG_ID, ("request_id", "policy"), run_id=run_id)
    if not runs:
        raise HTTPException(status_code=404, detail=f"no privacy request run '{run_id}'")
    config = current_config()
    policy = config.policies.get(str(runs[0].conf.get("policy")))
    key = Variable.get(STORE_KEY_VARIABLE, default_var=None)
    if policy is None or not key:
        raise HTTPException(status_code=409, detail=f"run '{run_id}' has no known policy, or no store key is set")
    try:
        store = StoreReader(config, storage_root(config), key).owned_store(run_id, request_id_of(runs[0]))
    except (ForeignRequestError, NoStoreKey) as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    try:
        entry = extend(store, policy, reason=body.get("reason"), months=body.get("months"), days=body.get("days"),
                       by=str(user.get_name()))
        rewrite_report(config, store)  # a report written already (and its certificate) shows the new due date
    except RequestError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    log.info("Deadline of run %s extended by %s", run_id, user.get_name())
    return entry


class PrivacyStatutoryClockPlugin(AirflowPlugin):
    name = "privacy_statutory_clock"
    fastapi_apps = [{"app": app, "url_prefix": "/privacy-deadlines", "name": "Privacy request deadlines"}]
