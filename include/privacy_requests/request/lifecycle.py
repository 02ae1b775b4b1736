"""The life of a request as the engine sees it: start (claim, check, secrets), review, fail, finish.

Airflow's operators call these; the deployment-specific checks (an SMTP connection that exists) are handed
in, so the rules are tested without Airflow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError, DataSourceError, RequestError, StepSkipped, TransientError
from ..model.graph import CollectionAddress
from ..model.masking import new_request_secrets
from ..store import in_flight, layout, subject_order
from .asking import APPROVE, REJECT, Answer, Question, duration
from .report import Report, build_report, write_report
from .request import (
    PrivacyRequest,
    RunEnded,
    check_dry_run_followed,
    check_request,
    check_vendors,
    claim_request_id,
    claim_subject,
    release_subject,
    request_ended,
    run_id_problem,
    start_reading,
    stop_reading,
)
from .statutory_clock import request_due

log = logging.getLogger(__name__)

def start_request(request: PrivacyRequest, run_id: str, received: str,
                  deployment_problems: Callable[[], list[str]] = list,
                  run_ended: RunEnded | None = None) -> dict[str, Any]:
    """Everything that must hold before any data is touched, in the order that keeps other requests safe.

    0. A run id Airflow cannot serve (``.``) is refused before anything is claimed: such a run would fail in
       Airflow's own code after the claim, where the engine cannot record it.
    1. The run claims the request id (a run given another request's id fails here, writing nothing there).
    2. The conf, policy, reachability and, for erasures, vendor settings and ``deployment_problems`` (the
       SMTP connection, the erasure targets' real column types) are checked.
    3. The subject is claimed: a second open request for the same subject and policy is refused. A dry run
       changes nothing, so it claims nobody (the real run it prepares may start while it is still open).
       A holder whose run has ended in the orchestrator (``run_ended``) holds nothing.
    4. An access request marks itself as reading the person's data (subject_order.py): a later erasure of
       that person waits until its package is written.
    5. The per-request masking secrets are made once (a cleared validate_request keeps them).
    Returns the request record (id, policy, identity types, run id, received time).
    """
    refused = run_id_problem(run_id)
    if refused:
        raise RequestError(f"request rejected: {refused}")
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
        claim_subject(request, run_ended)
    elif request.policy.erasure_rules or request.policy.access_package.deliver:  # what a real run sends: planned
        plan_saas_tests(request)
    start_reading(request, record["received"])
    if not request.store.exists(layout.SECRETS):
        request.store.put(layout.SECRETS, new_request_secrets())
    request.store.add_event("request_validated", policy=request.conf.policy,
                            identity_types=record["identity_types"], dry_run=request.conf.dry_run,
                            after_dry_run=request.conf.after_dry_run)
    return record


def plan_saas_tests(request: PrivacyRequest) -> None:
    """A dry run sends no SaaS ``test_request`` (a call to the vendor's API with our credentials): each one a
    real run would send in validate_request is a ``saas_test_planned`` event (dataset, method, path template;
    no value), once."""
    store = request.store
    planned = {e["dataset"] for e in store.events() if e["event"] == "saas_test_planned"}
    for dataset, saas in sorted(request.config.saas.items()):
        test = saas.test_request
        if test is not None and dataset not in planned:
            store.add_event("saas_test_planned", dataset=dataset, method=test.method, path=test.path)


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
    if final:
        stop_reading(request)


def finish_request(request: PrivacyRequest) -> tuple[Report, int]:
    """report.json, then the intermediate data deleted and the subject freed; the ledger and deliverables stay.
    Returns the report and how many intermediate objects were deleted."""
    report = write_report(request)  # and the certificate (none for a dry run, which erased nothing)
    removed = request.store.delete_intermediate()
    release_subject(request)
    stop_reading(request)
    return report, removed


def approval_question(request: PrivacyRequest, asked_of: str = "a person") -> Question | None:
    """What to ask when the policy wants a person to approve; None when it was approved already (a clear does
    not ask again). No identity value is in the question: only the policy, its categories and the due date.

    A dry run asks nobody (it would keep a person waiting for a request that changes nothing, and the person
    would act on it): the question it would ask is an ``approval_planned`` event of the plan instead, saying
    whom it would be asked of (``asked_of``, as the orchestrator routes questions), and None is returned, so the
    dry run goes on as if approved and its plan shows what an approved request would do."""
    policy = request.policy
    if not policy.manual_approval:
        raise StepSkipped(f"policy '{policy.key}' does not ask for manual approval")
    if request.conf.dry_run:
        plan_approval(request, asked_of)
        return None
    approved = request.store.get(layout.APPROVAL)
    if approved:
        log.info("Approved by %s at %s: not asking again", approved["by"], approved["time"])
        return None
    return _question(request)


def _question(request: PrivacyRequest) -> Question:
    policy = request.policy
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


def plan_approval(request: PrivacyRequest, asked_of: str) -> None:
    """The approval a dry run would ask for, recorded once (a cleared task does not plan twice): the question's
    subject, options and timeout, and whom it would be asked of; no identity value, as in the question."""
    store = request.store
    if any(e["event"] == "approval_planned" for e in store.events()):
        return
    question = _question(request)
    store.add_event("approval_planned", subject=question.subject, options=question.options,
                    asked_of=asked_of, timeout_seconds=int(question.timeout.total_seconds()))
    log.info("Dry run: the approval that would be asked of %s is planned; nobody is asked", asked_of)


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
    stop_reading(request)


def wait_for_earlier_readers(request: PrivacyRequest, run_ended: RunEnded | None = None) -> str | None:
    """Before an erasure step changes anything: the earliest access request for the same person, received
    before this one, that has not written its package yet, or None when the erasure may go on.

    While it waits, the request's report says ``waiting`` and names that request (the overview shows it), and
    an event records the wait once; when the wait is over, the event says so and the waiting report goes.
    """
    if request.conf.dry_run:  # a dry run changes nothing: nobody's copy can lose anything
        return None
    received = (request.store.get(layout.REQUEST) or {}).get("received")
    readers = subject_order.earlier_readers(request.store.root, request.persons, request.request_id,
                                            received, request_ended(request, run_ended)) if received else []
    waiting = request.store.get(layout.WAITING_FOR)
    if readers:
        first = readers[0]
        if (waiting or {}).get("request_id") != first:
            request.store.put(layout.WAITING_FOR, {"request_id": first, "since": datetime.now(UTC).isoformat()})
            request.store.add_event("waiting_for_access_request", request=first)
            body = build_report(request).body | {"status": layout.WAITING, "waiting_for": first}
            request.store.write_public(layout.REPORT, [json.dumps(body, indent=2) + "\n"])
        return first
    if waiting:
        request.store.add_event("wait_over", request=waiting["request_id"], since=waiting["since"])
        request.store.delete(layout.WAITING_FOR)
        if in_flight.report_status(request.store.root, request.request_id) == layout.WAITING:
            request.store.delete(layout.REPORT)
    return None
