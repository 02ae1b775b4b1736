"""``vendor_confirmation.<dataset>``: waits, without a worker slot, for a vendor's answer to the confirmation
link in its erasure email; sends the reminders that fall due and fails the step as overdue. The rules are the
engine's (vendor_confirmation.py); this task parks, resumes and mails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Context

from ...errors import RequestError, StepSkipped
from ...outbound.vendor_confirmation import (
    Wait,
    close_overdue,
    confirmation_question,
    next_step,
    open_round,
    overdue_error,
    overdue_message,
    record_answer,
    send_reminder,
)
from ...request.asking import Answer
from ...request.request import PrivacyRequest
from ...store import layout
from ..hitl import asker
from ..hooks import confirmation_links, smtp_send, smtp_sender
from ..notify import dpo_notifier
from .base import PrivacyRequestOperator


class VendorConfirmationOperator(PrivacyRequestOperator):
    """One vendor's confirmation: asked through Airflow's human-in-the-loop, answered by the vendor's link,
    under Required actions or over REST (``.../hitlDetails``)."""

    def __init__(self, *, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        if request.conf.dry_run:  # no email went out, so nobody is asked, reminded or notified
            raise StepSkipped(f"a dry run sent '{self.dataset}' no email: nothing to confirm")
        return self._wait(request, context)

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("error") or not event.get("chosen_options"):  # a reminder fell due, or the deadline
            return self._wait(request, context)
        wait = open_round(request.store, self.dataset, self._sent(request), datetime.now(UTC))
        entry = record_answer(request, self.dataset, Answer.of(event, ""), wait, datetime.now(UTC))
        return {"answer": entry["answer"], "response_seconds": entry["response_seconds"]}

    def _sent(self, request: PrivacyRequest) -> dict[str, Any]:
        sent = request.store.get(layout.email_sent(self.dataset))
        if sent is None:
            raise StepSkipped(f"no erasure email was sent to '{self.dataset}': nothing to confirm")
        return sent

    def _wait(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        store, config = request.store, self.privacy_config
        target = config.mapping(self.dataset).email
        assert target is not None
        answer = store.get(layout.confirmation(self.dataset))
        if answer:
            self.log.info("'%s' answered %s already: not asking again", self.dataset, answer["answer"])
            return {"answer": answer["answer"], "response_seconds": answer["response_seconds"]}
        sent = self._sent(request)
        wait = open_round(store, self.dataset, sent, datetime.now(UTC))
        while True:
            step = next_step(store, self.dataset, wait, target, datetime.now(UTC))
            if step.kind == "remind":
                send_reminder(request, self.dataset, wait, step.number, links=confirmation_links(),
                              sender=lambda: smtp_sender(config), send=smtp_send(config.settings.smtp_conn_id))
                continue
            if step.kind == "overdue":
                if close_overdue(store, self.dataset, wait, target):
                    self._notify(request.request_id, wait, context)
                raise RequestError(overdue_error(self.dataset, target, wait))
            self.log.info("Waiting for '%s' (round %d) for %s", self.dataset, wait.round, step.timeout)
            asker(context)(confirmation_question(request, self.dataset, sent, step.timeout))

    def _notify(self, request_id: str, wait: Wait, context: Context) -> None:
        target = self.privacy_config.mapping(self.dataset).email
        assert target is not None
        notifier = dpo_notifier(self.privacy_config, overdue_message(request_id, self.dataset, target, wait))
        if notifier is None:
            self.log.warning("'%s' is overdue and privacy.yml configures no deadline_alert notifier", self.dataset)
            return
        notifier(context)
