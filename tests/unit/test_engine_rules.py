"""The engine's rules for side effects, without Airflow: the call that reaches the outside world (SMTP send,
HTTP POST, asking a person) is handed in, as the Airflow wing hands in the real ones. Each test records what
reached the outside and asserts the rule: exactly once, in order, resumable."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from cryptography.fernet import Fernet

from include.privacy_requests.connectors.base import ErasureWork
from include.privacy_requests.connectors.vendor import VendorConnector
from include.privacy_requests.errors import RequestError, StepSkipped, TransientError
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.outbound.vendor_email import send_vendor_email
from include.privacy_requests.outbound.webhooks import Caller, Reply, call_webhooks, resume_webhooks
from include.privacy_requests.request.asking import APPROVE, REJECT, RESUME, Question
from include.privacy_requests.request.lifecycle import approval_question, record_review, start_request
from include.privacy_requests.request.request import PrivacyRequest, open_request
from include.privacy_requests.store import layout
from tests.support.outbox import Outbox
from tests.support.paths import DEMO_CONFIG

KEY = Fernet.generate_key().decode()
JANE = {"email": "jane@example.com"}


@pytest.fixture(scope="module")
def config() -> PrivacyConfig:
    return load_config(DEMO_CONFIG)


def started(config: PrivacyConfig, root: Path, policy: str, request_id: str = "r-1",
            identity: dict[str, str] = JANE) -> PrivacyRequest:
    conf = {"policy": policy, "identity": identity, "request_id": request_id}
    request = open_request(config, conf, "run-1", root, KEY)
    start_request(request, "run-1", "2026-11-28T00:00:00+00:00")
    return request



def vendor_instructions(request: PrivacyRequest) -> None:
    """What the erasure tasks of the vendor's collections record (customer located by the identity)."""
    config = request.config
    for name in ("daycare_customer", "children", "payment"):
        collection = config.graph.collections[CollectionAddress("daycare_vendor", name)]
        request.store.write_rows(layout.rows(collection.address), [])
        for edge in config.plan.inputs[collection.address]:
            if edge.source is not None:  # what the shop's collections found: Jane's values
                request.store.put(layout.values(edge.source, edge.source_field), ["jane@example.com"])
        VendorConnector().erase(ErasureWork(request, collection, request.policy.erasure_fields(collection),
                                            lambda: iter([])))


def test_a_vendor_email_is_sent_once_and_a_refusal_sends_nothing(config: PrivacyConfig, tmp_path: Path) -> None:
    request = started(config, tmp_path, "default_erasure_policy")
    vendor_instructions(request)
    outbox = Outbox()

    outbox.fail = TransientError("SMTP server down")
    with pytest.raises(TransientError):
        send_vendor_email(request, "daycare_vendor", sender=lambda: "privacy@example.com", send=outbox, try_number=1)
    assert not request.store.exists(layout.email_sending("daycare_vendor"))  # nothing went out: may send again

    outbox.fail = None
    first = send_vendor_email(request, "daycare_vendor", sender=lambda: "privacy@example.com", send=outbox,
                              try_number=2)
    again = send_vendor_email(request, "daycare_vendor", sender=lambda: "privacy@example.com", send=outbox,
                              try_number=3)
    assert len(outbox.sent) == 1 and again == first and first["try_number"] == 2
    assert outbox.sent[0]["Message-ID"] == first["message_id"]
    assert [e["event"] for e in request.store.events()].count("email_sent") == 1


def test_an_interrupted_send_is_not_repeated_blindly(config: PrivacyConfig, tmp_path: Path) -> None:
    """A try that stopped between the SMTP conversation and its record may have sent: a person checks."""
    request = started(config, tmp_path, "default_erasure_policy")
    vendor_instructions(request)
    request.store.put(layout.email_sending("daycare_vendor"), {"message_id": "<x@example.com>", "time": "t"})
    outbox = Outbox()
    with pytest.raises(RequestError, match="check the SMTP server's log for that Message-ID"):
        send_vendor_email(request, "daycare_vendor", sender=lambda: "a@example.com", send=outbox, try_number=2)
    assert outbox.sent == []


def test_no_vendor_email_for_an_access_policy(config: PrivacyConfig, tmp_path: Path) -> None:
    request = started(config, tmp_path, "default_access_policy")
    with pytest.raises(StepSkipped, match="no erasure rules"):
        send_vendor_email(request, "daycare_vendor", sender=lambda: "never looked up", send=Outbox(), try_number=1)


class Remote:
    """The webhook endpoints as the rule sees them: calls in order, and the replies to give."""

    def __init__(self, *replies: Reply) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, str] | None]] = []
        self.replies = list(replies)

    def __call__(self, webhook: Any, payload: dict[str, Any], headers: dict[str, str] | None) -> Reply:
        self.calls.append((webhook.name, payload, headers))
        return self.replies.pop(0) if self.replies else Reply(200, b"", 0.01)


class Parked(Exception):
    """What asking a person does to the task: it stops here until the answer."""


def ask(questions: list[Question]) -> Any:
    def record(question: Question) -> NoReturn:
        questions.append(question)
        raise Parked

    return record


def with_webhooks(tmp_path: Path, pre: list[dict[str, Any]]) -> PrivacyConfig:
    """The demo configuration plus an access policy with these pre-execution webhooks."""
    folder = tmp_path / "privacy"
    shutil.copytree(DEMO_CONFIG, folder, ignore=shutil.ignore_patterns("seed"))
    (folder / "policies" / "hooked.yml").write_text(yaml.safe_dump({"policy": [
        {"key": "hooked", "rules": [{"key": "a", "action": "access", "targets": ["user"]}],
         "webhooks": {"pre": pre}}]}))
    return load_config(folder)


def test_webhooks_run_in_order_once_and_a_halt_waits_for_a_person(config: PrivacyConfig, tmp_path: Path) -> None:
    hooked = with_webhooks(tmp_path, pre=[
        {"name": "first", "conn_id": "c"},
        {"name": "gate", "conn_id": "c", "direction": "two_way", "halt_timeout": "PT1H"},
        {"name": "last", "conn_id": "c"},
    ])
    request = started(hooked, tmp_path / "storage", "hooked")
    remote = Remote(Reply(200, b"", 0.01), Reply(200, json.dumps({"halt": True}).encode(), 0.01))
    questions: list[Question] = []
    caller = Caller(post=remote, ask=ask(questions), resume_url="/resume", protect=lambda v: None, try_number=1)

    with pytest.raises(Parked):
        call_webhooks(request, "pre", caller)
    assert [c[0] for c in remote.calls] == ["first", "gate"]
    assert remote.calls[1][2] == {"reply-to": "/resume"} and remote.calls[0][2] is None
    assert questions[0].options == [RESUME] and questions[0].timeout == timedelta(hours=1)
    assert "jane" not in questions[0].body

    answer = {"chosen_options": [RESUME], "params_input": {"derived_identity": {"phone_number": "+15555550100"}},
              "responded_by_user": {"name": "ops"}}
    assert resume_webhooks(request, "pre", answer, caller) == 1
    assert [c[0] for c in remote.calls] == ["first", "gate", "last"]
    assert remote.calls[2][1]["identity"] == {**JANE, "phone_number": "+15555550100"}
    assert call_webhooks(request, "pre", caller) == 0  # a clear calls nothing twice
    assert len(remote.calls) == 3


def test_a_webhook_answering_5xx_is_transient_and_4xx_is_final(config: PrivacyConfig, tmp_path: Path) -> None:
    hooked = with_webhooks(tmp_path, pre=[{"name": "flaky", "conn_id": "c"}])
    request = started(hooked, tmp_path / "storage", "hooked")
    caller = lambda remote: Caller(post=remote, ask=ask([]), resume_url="", protect=lambda v: None,  # noqa: E731
                                   try_number=1)
    with pytest.raises(TransientError, match="HTTP 503"):
        call_webhooks(request, "pre", caller(Remote(Reply(503, b"", 0.1))))
    with pytest.raises(RequestError, match="HTTP 403"):
        call_webhooks(request, "pre", caller(Remote(Reply(403, b"", 0.1))))
    assert call_webhooks(request, "pre", caller(Remote())) == 1
    assert not request.store.exists(layout.webhook_called("post", "flaky"))


def test_an_approval_is_asked_once_and_a_rejection_closes_the_request(config: PrivacyConfig,
                                                                      tmp_path: Path) -> None:
    approved = started(config, tmp_path, "reviewed_erasure_policy", "approved")
    question = approval_question(approved)
    assert question is not None and question.options == [APPROVE, REJECT] and "jane" not in question.body
    assert record_review(approved, {"chosen_options": [APPROVE], "responded_by_user": {"name": "dpo"}})
    assert approval_question(approved) is None  # a clear does not ask again

    rejected = started(config, tmp_path, "reviewed_erasure_policy", "rejected", {"email": "john@example.com"})
    assert not record_review(rejected, {"chosen_options": [REJECT], "params_input": {"reason": "duplicate"},
                                        "responded_by_user": {"name": "dpo"}})
    report = json.loads((tmp_path / "rejected" / layout.REPORT).read_text())
    assert (report["status"], report["review"]["reason"]) == ("rejected", "duplicate")
    with pytest.raises(RequestError, match="nobody approved or rejected"):
        record_review(rejected, {"error": "timeout"})


def test_a_reconsidered_rejection_holds_its_subject_again(config: PrivacyConfig, tmp_path: Path) -> None:
    """Rejected, the subject was freed; approved after a clear, the request holds it again, so a later request
    for the same subject is refused, and one that came in meanwhile makes the approval fail instead."""
    reject = {"chosen_options": [REJECT], "responded_by_user": {"name": "dpo"}}
    approve = {"chosen_options": [APPROVE], "responded_by_user": {"name": "dpo"}}
    first = started(config, tmp_path, "reviewed_erasure_policy", "first")
    record_review(first, reject)
    assert record_review(first, approve)
    with pytest.raises(RequestError, match="'first' for the same subject"):
        started(config, tmp_path, "reviewed_erasure_policy", "later")

    other = started(config, tmp_path, "reviewed_erasure_policy", "other", {"email": "john@example.com"})
    record_review(other, reject)
    started(config, tmp_path, "reviewed_erasure_policy", "meanwhile", {"email": "john@example.com"})
    with pytest.raises(RequestError, match="'meanwhile' for the same subject"):
        record_review(other, approve)
    assert approval_question(other) is not None  # not approved: nothing proceeds


def test_a_dry_run_asks_nobody_for_approval_and_plans_the_question(config: PrivacyConfig, tmp_path: Path) -> None:
    """A dry run of a policy with manual_approval does not wait for a person: the question it would ask, and of
    whom, is an approval_planned event of its plan (once, however often the task is cleared)."""
    conf = {"policy": "reviewed_erasure_policy", "identity": JANE, "request_id": "dry", "dry_run": True}
    request = open_request(config, conf, "run-dry", tmp_path, KEY)
    start_request(request, "run-dry", "2026-11-28T00:00:00+00:00")
    assert approval_question(request, "the DPO team") is None
    assert approval_question(request, "the DPO team") is None
    planned = [e for e in request.store.events() if e["event"] == "approval_planned"]
    assert len(planned) == 1
    assert planned[0]["asked_of"] == "the DPO team" and planned[0]["options"] == [APPROVE, REJECT]
    assert planned[0]["subject"] == "Approve privacy request dry?" and planned[0]["timeout_seconds"] > 0
    assert "jane" not in json.dumps(planned) and not request.store.exists(layout.APPROVAL)
