"""Emails to people outside (vendors), exactly once: one per vendor dataset and request, and the digests that
list many requests or a batch's subjects (``send_once`` is the rule for all of them).

The rule: the sent record in the ledger means never again; a "sending" marker written before the SMTP
conversation and removed after the record means an earlier try stopped in between, and then nothing is sent
until a person has checked the SMTP server's log (a duplicate is worse than a delay). A server that said no
sent nothing, so the marker goes and a retry may send. The send itself is handed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol

from ..connectors.vendor import locatable
from ..errors import RequestError, StepSkipped, TransientError
from ..request.request import PrivacyRequest
from ..store import layout
from .digest_queue import queue_for_digest
from .email.message import build_message
from .email.render import RenderedEmail, render_erasure_email
from .vendor_confirmation import Links

log = logging.getLogger(__name__)
Send = Callable[[EmailMessage], dict[str, Any]]  # the message -> the recipients the server refused


def send_vendor_email(request: PrivacyRequest, dataset: str, *, sender: Callable[[], str], send: Send,
                      try_number: int, links: Links | None = None) -> dict[str, Any]:
    """Send the vendor the instructions of all its collections; returns the ledger entry (sent now or before).
    ``sender`` gives the From address, looked up only when there is something to send; ``links`` makes
    the confirmation link (round 1) in the email of a vendor that opted in (``confirm: true``)."""
    config, store = request.config, request.store
    if not request.policy.erasure_rules:
        raise StepSkipped(f"policy '{request.policy.key}' has no erasure rules: no vendor email")
    target = config.mapping(dataset).email
    assert target is not None
    if config.mapping(dataset).access == "read":
        raise StepSkipped(f"dataset '{dataset}' is read-only (access: read): no email")

    def compose(confirmable: bool = True) -> Composed:
        instructions = instructions_to_send(request, dataset)
        link = None
        if target.confirm and confirmable:
            if links is None:
                raise RequestError(f"vendor '{dataset}' asks for confirmation (confirm: true) but no link can be "
                                   "made")
            link = links(request.request_id, dataset, 1, datetime.now(UTC) + target.overdue_after)
        rendered = render_erasure_email(organization=config.settings.organization, request_id=request.request_id,
                                        vendor_name=target.vendor_name, instructions=instructions, confirm_url=link)
        return Composed(rendered, target.to, {"collections": len(instructions)})

    if request.conf.dry_run:  # kept for the request page: no "sending" marker, no ledger entry, nothing sent
        composed = compose(confirmable=False)  # a dry run's email carries no working confirmation link
        entry = {"dataset": dataset, "recipients": list(composed.to), "subject": composed.rendered.subject,
                 "time": datetime.now(UTC).isoformat(), **composed.counts}
        store.put(layout.dry_run_email(dataset), {**entry, "html": composed.rendered.html,
                                                  "text": composed.rendered.text})
        store.add_event("email_rendered", dataset=dataset, recipients=entry["recipients"], dry_run=True)
        log.info("Dry run: the erasure email for '%s' was rendered and kept, not sent", dataset)
        return entry
    if target.digest:  # the vendor gets a digest on a schedule: hand the instructions to it
        return queue_for_digest(request, dataset, lambda: instructions_to_send(request, dataset))
    return send_once(store, dataset, compose, sender=sender, send=send, try_number=try_number)


def instructions_to_send(request: PrivacyRequest, dataset: str) -> list[dict[str, Any]]:
    """The vendor dataset's recorded instructions; StepSkipped when none has anything the vendor can erase."""
    store = request.store
    instructions = [store.get(n) for n in store.list(layout.instructions(dataset))]
    if not instructions:
        raise StepSkipped(f"no instruction was recorded for '{dataset}': no email")
    found = locatable(instructions)
    if not any(i["erase"] for i in instructions if i["collection"] in found):
        raise StepSkipped(f"no collection of '{dataset}' has anything to erase that the vendor can locate "
                          "with what we hold: no email")
    return instructions


@dataclass(frozen=True)
class Composed:
    """An email ready to send: what it says, to whom, and counts for its ledger entry (nothing personal)."""

    rendered: RenderedEmail
    to: list[str]
    counts: dict[str, int]
    event: str = "email_sent"  # the audit event's kind
    shown_to: str | None = None  # what the (public) event says instead of the addresses, when they are personal


class Ledger(Protocol):
    """Where an email's exactly-once record lives: a request's store, or a batch's or digest's."""

    base: Any

    def get(self, name: str, default: Any = None) -> Any: ...
    def put(self, name: str, value: Any) -> None: ...
    def create(self, name: str, value: Any) -> bool: ...
    def delete(self, name: str) -> None: ...
    def add_event(self, kind: str, **fields: Any) -> dict[str, Any]: ...


def send_once(store: Ledger, key: str, compose: Callable[[], Composed], *, sender: Callable[[], str], send: Send,
              try_number: int) -> dict[str, Any]:
    """The exactly-once rule of every email this project sends to someone outside (module docstring), for the
    email ``key`` names in ``store``. ``compose`` runs only when nothing was sent yet; it may raise StepSkipped.
    Returns the ledger entry, sent now or before."""
    sent = store.get(layout.email_sent(key))
    if sent:
        log.info("Email '%s' was already sent at %s (Message-ID %s): not sending again", key, sent["time"],
                 sent["message_id"])
        return sent
    began = store.get(layout.email_sending(key))
    if began:
        raise RequestError(
            f"an earlier try began sending the email '{key}' (Message-ID {began['message_id']}) at "
            f"{began['time']} and stopped before recording the outcome: check the SMTP server's log for that "
            f"Message-ID; to send anyway, delete {store.base / layout.email_sending(key)} and clear this task")
    composed = compose()
    message = build_message(composed.rendered, sender=sender(), to=composed.to)
    marker = {"message_id": message["Message-ID"], "time": datetime.now(UTC).isoformat(), "try_number": try_number}
    if not store.create(layout.email_sending(key), marker):  # conditional: two tries racing, one sends
        raise RequestError(f"another try is sending the email '{key}' right now: not sending it twice")
    try:
        refused = send(message)
    except (RequestError, TransientError):
        store.delete(layout.email_sending(key))  # the server said no: nothing went out, a retry may send
        raise
    recipients = [r for r in composed.to if r not in refused]
    entry = {"dataset": key, "recipients": recipients, "refused": sorted(refused),
             "message_id": message["Message-ID"], "subject": composed.rendered.subject,
             "time": datetime.now(UTC).isoformat(), "try_number": try_number, **composed.counts}
    store.put(layout.email_sent(key), entry)
    store.put(layout.email_message(key), {"html": composed.rendered.html, "text": composed.rendered.text})
    store.delete(layout.email_sending(key))
    shown = [composed.shown_to] if composed.shown_to else recipients
    store.add_event(composed.event, dataset=key, recipients=shown,
                    refused=[composed.shown_to] if composed.shown_to and refused else sorted(refused),
                    message_id=entry["message_id"], try_number=try_number)
    if refused:
        log.warning("The SMTP server refused %s for '%s'", composed.shown_to or ", ".join(sorted(refused)), key)
    log.info("Email '%s' sent to %s (Message-ID %s, %s)", key, ", ".join(shown), entry["message_id"],
             ", ".join(f"{v} {k}" for k, v in composed.counts.items()))
    return entry
