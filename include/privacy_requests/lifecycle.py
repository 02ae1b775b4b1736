"""The life of a request as the engine sees it: start (claim, check, secrets), then finish.

Airflow's operators call these; the deployment-specific checks (an SMTP connection that exists) are handed
in, so the rules are tested without Airflow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import RequestError
from .masking import new_request_secrets
from .request import PrivacyRequest, check_request, check_vendors, claim_request_id, claim_subject

SECRETS = "secrets.json"


def start_request(request: PrivacyRequest, run_id: str, received: str,
                  deployment_problems: Callable[[], list[str]] = list) -> dict[str, Any]:
    """Everything that must hold before any data is touched, in the order that keeps other requests safe.

    1. The run claims the request id (a run given another request's id fails here, writing nothing there).
    2. The conf, policy, reachability and, for erasures, vendor and deployment settings are checked.
    3. The subject is claimed: a second open request for the same subject and policy is refused.
    4. The per-request masking secrets are made once (a cleared validate_request keeps them).
    Returns the request record (id, policy, identity types, run id, received time).
    """
    record = claim_request_id(request, run_id, received)
    config = request.config
    problems = check_request(config, request.conf)
    if request.conf.policy in config.policies and request.policy.erasure_rules:
        problems += check_vendors(config)
        if config.email_datasets:
            problems += deployment_problems()
    if problems:
        raise RequestError("request rejected: " + "; ".join(problems))
    claim_subject(request)
    if not request.store.exists(SECRETS):
        request.store.put(SECRETS, new_request_secrets())
    request.store.add_event("request_validated", policy=request.conf.policy,
                            identity_types=record["identity_types"])
    return record
