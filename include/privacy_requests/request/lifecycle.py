"""The life of a request as the engine sees it: start (claim, check, secrets), review, fail, finish.

Airflow's operators call these; the deployment-specific checks (an SMTP connection that exists) are handed
in, so the rules are tested without Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError, DataSourceError, RequestError, StepSkipped, TransientError
from ..model.graph import CollectionAddress
from ..model.masking import new_request_secrets
from ..store import layout
from .asking import APPROVE, REJECT, Answer, Question, duration
from .report import Report, write_report
from .request import (
    PrivacyRequest,
    check_dry_run_followed,
    check_request,
    check_vendors,
    claim_request_id,
    claim_subject,
    release_subject,
)
from .statutory_clock import request_due

log = logging.getLogger(__name__)

def start_request(request: PrivacyRequest, run_id: str, received: str,
                  deployment_problems: Callable[[], list[str]] = list) -> dict[str, Any]:
    """Everything that must hold before any data is touched, in the order that keeps other requests safe.

    1. The run claims the request id (a run given another request's id fails here, writing nothing there).
    2. The conf, policy, reachability and, for erasures, vendor settings and ``deployment_problems`` (the
       SMTP connection, the erasure targets' real column types) are checked.
    3. The subject is claimed: a second open request for the same subject and policy is refused. A dry run
       changes nothing, so it claims nobody (the real run it prepares may start while it is still open).
    4. The per-request masking secrets are made once (a cleared validate_request keeps them).
    Returns the request record (id, policy, identity types, run id, received time).
    """
    record = claim_request_id(request, run_id, received)
    config = request.config
    problems = check_request(config, request.conf) + check_dry_run_followed(request)
    if request.conf.policy in config.policies:
        policy = request.policy
        if policy.erasure_rules:
            problems += check_vendors(config)
        if policy.erasure_rules or policy.access_package.deliver:  # deliver: the package goes out by email
            problems += deployment_problems()
    if problems:
        raise RequestError("request rejected: " + "; ".join(problems))
    if not request.conf.dry_run:
        claim_subject(request)
    if not request.store.exists(layout.SECRETS):
        request.store.put(layout.SECRETS, new_request_secrets())
    request.store.add_event("request_validated", policy=request.conf.policy,
                            identity_types=record["identity_types"], dry_run=request.conf.dry_run,
                            after_dry_run=request.conf.after_dry_run)
    return record


def record_result(request: PrivacyRequest, step: str, address: CollectionAddress | None, try_number: int,
                  **result: Any) -> dict[str, Any]:
    """A step's counts and reasons for the report (nothing personal), keyed by step and collection."""
    result = {"step": step, "try_number": try_number, "time": datetime.now(UTC).isoformat(), **result}
    request.store.put(layout.result(step, address), result)
    return result


def record_failure(request: PrivacyRequest, checkpoint: str, try_number: int, exc: Exception, *,
                   final: bool) -> None:
    """An event, and report.json saying the request failed here (finish rewrites it on success), or, while a
    retry is still to come (``final`` False), that it is retrying: a retrying request still holds its subject.
    Only the messages of the engine's own errors are kept: an unforeseen error's text may quote data."""
    known = isinstance(exc, (RequestError, ConfigError, DataSourceError, TransientError))
    failure = request.store.add_event("checkpoint_failed", checkpoint=checkpoint, try_number=try_number,
                                      error=type(exc).__name__, message=str(exc) if known else "see the task log",
                                      final=final)
    write_report(request, failure=failure)


def finish_request(request: PrivacyRequest) -> tuple[Report, int]:
    """report.json, then the intermediate data deleted and the subject freed; the ledger and deliverables stay.
    Returns the report and how many intermediate objects were deleted."""
    report = write_report(request)  # and the certificate (none for a dry run, which erased nothing)
    removed = request.store.delete_intermediate()
    release_subject(request)
    return report, removed


def approval_question(request: PrivacyRequest) -> Question | None:
    """What to ask when the policy wants a person to approve; None when it was approved already (a clear does
    not ask again). No identity value is in the question: only the policy, its categories and the due date."""
    policy = request.policy
    if not policy.manual_approval:
        raise StepSkipped(f"policy '{policy.key}' does not ask for manual approval")
    approved = request.store.get(layout.APPROVAL)
    if approved:
        log.info("Approved by %s at %s: not asking again", approved["by"], approved["time"])
        return None
    dates = request_due(request.store, policy)
    due = dates[1].date() if dates else "unknown"
    access = sorted({t for r in policy.access_rules for t in r.targets})
    erasure = sorted({t for r in policy.erasure_rules for t in r.targets})
    return Question(
        subject=f"Approve privacy request {request.request_id}?",
        body=f"**{policy.display_name}** (`{policy.key}`) for a subject identified by "
             f"{', '.join(sorted(request.conf.identity))}; due {due}.\n\n"
             f"- returns: {', '.join(access) or 'nothing'}\n- erases: {', '.join(erasure) or 'nothing'}\n\n"
             "Nothing has been read or changed yet. A rejection ends the request; give the reason.",
        options=[APPROVE, REJECT], timeout=request.config.settings.wait_timeout,
        form={"reason": {"default": "", "type": ["null", "string"], "title": "Reason",
                         "description": "Why (kept in the request's report)."}})


def record_review(request: PrivacyRequest, event: dict[str, Any]) -> bool:
    """The person's decision: an approval goes into the ledger; a rejection ends the request (its report says
    who and why, and the subject is freed). Returns whether the request was approved."""
    answer = Answer.of(event, f"nobody approved or rejected the request within "
                              f"{duration(request.config.settings.wait_timeout)}; clear approve_request to ask again")
    reason = str(answer.values.get("reason") or "").strip() or None
    store = request.store
    if answer.option == APPROVE:
        if any(e["event"] == "request_rejected" for e in store.events()):
            # Reconsidered after a rejection, which freed the subject and wrote a final report: the request holds
            # its subject again (or is refused, if another request took it) and is open again (no report).
            claim_subject(request)
            store.delete(layout.REPORT)
        store.put(layout.APPROVAL, {"by": answer.by, "time": datetime.now(UTC).isoformat()})
        store.add_event("request_approved", by=answer.by, reason=reason)
        log.info("Request approved by %s", answer.by)
        return True
    reject_request(request, by=answer.by, reason=reason or "no reason given")
    log.info("Request rejected by %s: nothing was read or changed", answer.by)
    return False


def reject_request(request: PrivacyRequest, *, by: str | None, reason: str, **fields: Any) -> None:
    """End a request before anything is touched: its report says who rejected it and why (status rejected),
    and its subject is freed."""
    request.store.add_event("request_rejected", by=by, reason=reason, **fields)
    write_report(request)
    release_subject(request)
