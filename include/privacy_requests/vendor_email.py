"""One email per vendor dataset and request, exactly once.

The rule: the sent record in the ledger means never again; a "sending" marker written before the SMTP
conversation and removed after the record means an earlier try stopped in between, and then nothing is sent
until a person has checked the SMTP server's log (a duplicate is worse than a delay). A server that said no
sent nothing, so the marker goes and a retry may send. The send itself is handed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from . import layout
from .connectors.vendor import locatable
from .email.message import build_message
from .email.render import render_erasure_email
from .errors import RequestError, StepSkipped, TransientError
from .request import PrivacyRequest

log = logging.getLogger(__name__)
Send = Callable[[EmailMessage], dict[str, Any]]  # the message -> the recipients the server refused


def send_vendor_email(request: PrivacyRequest, dataset: str, *, sender: Callable[[], str], send: Send,
                      try_number: int) -> dict[str, Any]:
    """Send the vendor the instructions of all its collections; returns the ledger entry (sent now or before).
    ``sender`` gives the From address, looked up only when there is something to send."""
    config, store = request.config, request.store
    if not request.policy.erasure_rules:
        raise StepSkipped(f"policy '{request.policy.key}' has no erasure rules: no vendor email")
    target = config.mapping(dataset).email
    assert target is not None
    if config.mapping(dataset).access == "read":
        raise StepSkipped(f"dataset '{dataset}' is read-only (access: read): no email")
    sent = store.get(layout.email_sent(dataset))
    if sent:
        log.info("Email for '%s' was already sent at %s (Message-ID %s): not sending again", dataset, sent["time"],
                 sent["message_id"])
        return sent
    began = store.get(layout.email_sending(dataset))
    if began:
        raise RequestError(
            f"an earlier try began sending the email for '{dataset}' (Message-ID {began['message_id']}) at "
            f"{began['time']} and stopped before recording the outcome: check the SMTP server's log for that "
            f"Message-ID; to send anyway, delete {store.base / layout.email_sending(dataset)} and clear this task")
    instructions = [store.get(n) for n in store.list(layout.instructions(dataset))]
    if not instructions:
        raise StepSkipped(f"no instruction was recorded for '{dataset}': no email")
    found = locatable(instructions)
    if not any(i["erase"] for i in instructions if i["collection"] in found):
        raise StepSkipped(f"no collection of '{dataset}' has anything to erase that the vendor can locate with "
                          "what we hold: no email")
    rendered = render_erasure_email(organization=config.settings.organization, request_id=request.request_id,
                                    vendor_name=target.vendor_name, instructions=instructions)
    message = build_message(rendered, sender=sender(), to=target.to)
    store.put(layout.email_sending(dataset), {"message_id": message["Message-ID"],
                                              "time": datetime.now(UTC).isoformat(), "try_number": try_number})
    try:
        refused = send(message)
    except (RequestError, TransientError):
        store.delete(layout.email_sending(dataset))  # the server said no: nothing went out, a retry may send
        raise
    recipients = [r for r in target.to if r not in refused]
    entry = {"dataset": dataset, "recipients": recipients, "refused": sorted(refused),
             "message_id": message["Message-ID"], "subject": rendered.subject,
             "time": datetime.now(UTC).isoformat(), "try_number": try_number, "collections": len(instructions)}
    store.put(layout.email_sent(dataset), entry)
    store.put(layout.email_message(dataset), {"html": rendered.html, "text": rendered.text})
    store.delete(layout.email_sending(dataset))
    store.add_event("email_sent", dataset=dataset, recipients=recipients, refused=sorted(refused),
                    message_id=entry["message_id"], try_number=try_number)
    if refused:
        log.warning("The SMTP server refused %s for '%s'", ", ".join(sorted(refused)), dataset)
    log.info("Erasure email for '%s' sent to %s (Message-ID %s, %d collection(s))", dataset,
             ", ".join(recipients), entry["message_id"], len(instructions))
    return entry
