"""Policy webhooks: ordered HTTP calls before and after execution, each successful call made once.

The payload identifies the request, the policy, the identity and the step, never access results. A two-way
webhook may answer ``{"derived_identity": {"phone_number": "..."}}``: those identities seed the traversal;
a two-way pre-execution webhook may answer ``{"halt": true}``: the request then waits (``ask``) until a
person or the remote system resumes it. The HTTP call itself is handed in (``post``), so these rules are
tested without Airflow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import RequestError, StepSkipped, TransientError
from ..model.policy import Webhook
from ..request.asking import RESUME, Answer, Ask, Question, duration
from ..request.request import PrivacyRequest, identity_problem
from ..store import layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    status: int
    content: bytes
    seconds: float


Post = Callable[[Webhook, dict[str, Any], dict[str, str] | None], Reply]  # network trouble: TransientError


@dataclass(frozen=True)
class Caller:
    """What calling webhooks needs from the deployment: the POST, a way to ask a person, where the answer
    to a halt goes (``reply-to``), and a hook that hides identity values from logs once they are known."""

    post: Post
    ask: Ask
    resume_url: str
    protect: Callable[[str], None]
    try_number: int


def classify(webhook: Webhook, reply: Reply) -> dict[str, Any]:
    """The answer of a call that succeeded; 5xx is transient (retried), other refusals and malformed two-way
    answers are not."""
    if reply.status >= 500:
        raise TransientError(f"webhook '{webhook.name}' answered HTTP {reply.status}")
    if reply.status >= 400:
        raise RequestError(f"webhook '{webhook.name}' refused the call: HTTP {reply.status}")
    if webhook.direction != "two_way" or not reply.content:
        return {}
    try:
        answer = json.loads(reply.content)
    except ValueError:
        raise RequestError(f"webhook '{webhook.name}' (two-way) did not answer JSON") from None
    if not isinstance(answer, dict):
        raise RequestError(f"webhook '{webhook.name}' (two-way) must answer a JSON object")
    derived = answer.get("derived_identity") or {}
    if not isinstance(derived, dict) or not all(isinstance(v, str) for v in derived.values()):
        raise RequestError(f"webhook '{webhook.name}': derived_identity must map identity types to strings")
    problem = identity_problem(derived, "derived_identity")
    if problem:
        raise RequestError(f"webhook '{webhook.name}': {problem}")
    return answer


def call_webhooks(request: PrivacyRequest, step: str, caller: Caller) -> int:
    """Call the policy's webhooks of ``step`` in order, skipping those already called; returns how many
    were called now. A halt parks the step through ``caller.ask``."""
    if not getattr(request.policy.webhooks, step):
        raise StepSkipped(f"policy '{request.conf.policy}' has no {step}-execution webhooks")
    if request.conf.dry_run:
        return plan_webhooks(request, step)
    called = 0
    for webhook in getattr(request.policy.webhooks, step):
        if request.store.exists(layout.webhook_called(step, webhook.name)):
            log.info("Webhook %s was already called for this request: not calling again", webhook.name)
            continue
        _call(request, step, webhook, caller)
        called += 1
    return called


def plan_webhooks(request: PrivacyRequest, step: str) -> int:
    """A dry run calls no webhook (the remote could act on the call, or derive identities it then keeps): each
    one is a ``webhook_planned`` event of the plan (name, connection, endpoint; never a payload). The plan
    covers the conf's identities only: what a two-way webhook would derive is not known until it is called.
    Returns 0 (nothing was called)."""
    planned = {(e["step"], e["webhook"]) for e in request.store.events() if e["event"] == "webhook_planned"}
    for webhook in getattr(request.policy.webhooks, step):
        if (step, webhook.name) not in planned:  # a cleared task does not plan twice
            request.store.add_event("webhook_planned", step=step, webhook=webhook.name, conn_id=webhook.conn_id,
                                    endpoint=webhook.endpoint, direction=webhook.direction)
    log.info("Dry run: %d %s-execution webhook(s) planned, none called", len(getattr(request.policy.webhooks, step)),
             step)
    return 0


def _call(request: PrivacyRequest, step: str, webhook: Webhook, caller: Caller) -> None:
    store = request.store
    payload = {"request_id": request.request_id, "policy": request.conf.policy, "step": step,
               "direction": webhook.direction, "identity": request.identity}
    may_halt = step == "pre" and webhook.direction == "two_way"
    reply = caller.post(webhook, payload, {"reply-to": caller.resume_url} if may_halt else None)
    answer = classify(webhook, reply)
    derived = answer.get("derived_identity") or {}
    _add_derived(request, derived, caller)
    halted = may_halt and bool(answer.get("halt"))
    store.add_event("webhook_called", step=step, webhook=webhook.name, direction=webhook.direction,
                    status=reply.status, seconds=reply.seconds, derived_identity_types=sorted(derived), halt=halted)
    log.info("Webhook %s (%s): HTTP %d in %.2f s%s", webhook.name, webhook.direction, reply.status, reply.seconds,
             f", derived identity types {sorted(derived)}" if derived else "")
    if halted:
        _halt(request, webhook, caller)
    if answer.get("halt"):
        log.warning("Webhook %s asked to halt after execution: ignored, only a two-way pre-execution webhook "
                    "can halt a request", webhook.name)
    store.put(layout.webhook_called(step, webhook.name), {"status": reply.status, "try_number": caller.try_number})


def _add_derived(request: PrivacyRequest, derived: dict[str, str], caller: Caller) -> None:
    if derived:
        for value in derived.values():
            caller.protect(value)
        store = request.store
        store.put(layout.DERIVED_IDENTITY, {**(store.get(layout.DERIVED_IDENTITY) or {}), **derived})


def _halt(request: PrivacyRequest, webhook: Webhook, caller: Caller) -> None:
    request.store.put(layout.HALTED, {"webhook": webhook.name, "time": datetime.now(UTC).isoformat()})
    request.store.add_event("request_halted", webhook=webhook.name,
                            timeout_seconds=int(webhook.halt_timeout.total_seconds()))
    log.info("Webhook %s halted the request: waiting up to %s to be resumed (%s)", webhook.name,
             webhook.halt_timeout, caller.resume_url)
    caller.ask(Question(
        subject=f"Privacy request {request.request_id} is halted by a webhook",
        body=f"The pre-execution webhook **{webhook.name}** asked to halt the request before any data is "
             f"touched. Choose *{RESUME}* when its system is ready; it may add derived identities "
             '(for example `{"phone_number": "+1..."}`) that then seed the traversal.',
        options=[RESUME], timeout=webhook.halt_timeout,
        form={"derived_identity": {"default": {}, "type": "object", "title": "Derived identity",
                                   "description": "Optional identity values found by the remote, by identity "
                                                  "type."}}))


def resume_webhooks(request: PrivacyRequest, step: str, event: dict[str, Any], caller: Caller) -> int:
    """The halt was answered: record who resumed (and the identities they added), then call the rest."""
    store = request.store
    halted = store.get(layout.HALTED)
    if halted is None:
        raise RequestError(f"{step}_webhooks was resumed but no halt is recorded: clear {step}_webhooks")
    webhook = next((w for w in getattr(request.policy.webhooks, step) if w.name == halted["webhook"]), None)
    if webhook is None:
        raise RequestError(f"webhook '{halted['webhook']}' halted the request but is no longer a {step}-execution "
                           f"webhook of policy '{request.conf.policy}': clear {step}_webhooks")
    answer = Answer.of(event, f"webhook '{webhook.name}' halted the request and nobody resumed it within "
                              f"{duration(webhook.halt_timeout)}; clear {step}_webhooks to call it again")
    derived = answer.values.get("derived_identity") or {}
    if not isinstance(derived, dict) or not all(isinstance(v, str) and v for v in derived.values()):
        raise RequestError(f"the resume's derived_identity must map identity types to non-empty strings; clear "
                           f"{step}_webhooks to call the webhook again")
    problem = identity_problem(derived, "derived_identity")
    if problem:
        raise RequestError(f"the resume's {problem}; clear {step}_webhooks to call the webhook again")
    _add_derived(request, derived, caller)
    store.put(layout.webhook_called(step, webhook.name), {"halted": True, "resumed_by": answer.by,
                                                         "try_number": caller.try_number})
    store.delete(layout.HALTED)
    store.add_event("request_resumed", webhook=webhook.name, by=answer.by, derived_identity_types=sorted(derived))
    log.info("Resumed by %s after webhook %s halted the request", answer.by, webhook.name)
    return call_webhooks(request, step, caller)
