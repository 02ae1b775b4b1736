"""The access package sent to the data subject by email (``access_package: {deliver: email}``), exactly once.

The same rule as a vendor email (vendor_email.py): the sent record in the ledger means never again; a
"sending" marker written before the SMTP conversation and removed after the record means an earlier try
stopped in between, and then nothing is sent until a person has checked the SMTP server's log. The subject's
address is the request's ``email`` identity; it is never logged, nor written anywhere in clear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .. import layout
from ..errors import RequestError, TransientError
from ..request import PrivacyRequest
from ..vendor_email import Send

log = logging.getLogger(__name__)
_TEMPLATES = Path(__file__).parent / "templates"
_html = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined)
_text = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=False, undefined=StrictUndefined,
                    keep_trailing_newline=True)


def package_message(request: PrivacyRequest, *, sender: str, to: str) -> EmailMessage:
    """A short letter (text and HTML) with ``access_package.html`` attached; its Message-ID fixed now."""
    context = {"organization": request.config.settings.organization, "request_id": request.request_id}
    message = EmailMessage()
    message["Subject"] = f"Your personal data held by {context['organization']} (request {request.request_id})"
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(_text.get_template("package_email.txt.j2").render(context))
    message.add_alternative(_html.get_template("package_email.html.j2").render(context), subtype="html")
    with (request.store.base / layout.ACCESS_PACKAGE_HTML).open("rb") as fh:
        message.add_attachment(fh.read(), maintype="text", subtype="html", filename=layout.ACCESS_PACKAGE_HTML)
    return message


def deliver_package(request: PrivacyRequest, *, sender: Callable[[], str], send: Send,
                    try_number: int) -> dict[str, object] | None:
    """Email the HTML package to the subject when the policy asks; returns the ledger entry (sent now or
    before), or None when the policy does not deliver or the request gives no email address."""
    store = request.store
    if request.policy.access_package.deliver != "email":
        return None
    sent = store.get(layout.PACKAGE_EMAIL_SENT)
    if sent:
        log.info("The access package was already emailed at %s (Message-ID %s): not sending again", sent["time"],
                 sent["message_id"])
        return sent
    began = store.get(layout.PACKAGE_EMAIL_SENDING)
    if began:
        raise RequestError(
            f"an earlier try began emailing the access package (Message-ID {began['message_id']}) at "
            f"{began['time']} and stopped before recording the outcome: check the SMTP server's log for that "
            f"Message-ID; to send anyway, delete {store.base / layout.PACKAGE_EMAIL_SENDING} and clear this task")
    to = request.identity.get("email")
    if not to:
        store.add_event("access_package_not_emailed", reason="the request gives no email identity")
        log.warning("The policy delivers the access package by email, but the request gives no email identity: "
                    "the package stays in storage only")
        return None
    message = package_message(request, sender=sender(), to=to)
    store.put(layout.PACKAGE_EMAIL_SENDING, {"message_id": message["Message-ID"],
                                             "time": datetime.now(UTC).isoformat(), "try_number": try_number})
    try:
        refused = send(message)
    except (RequestError, TransientError):
        store.delete(layout.PACKAGE_EMAIL_SENDING)  # the server said no: nothing went out, a retry may send
        raise
    entry = {"message_id": message["Message-ID"], "refused": bool(refused), "time": datetime.now(UTC).isoformat(),
             "try_number": try_number}
    store.put(layout.PACKAGE_EMAIL_SENT, entry)
    store.delete(layout.PACKAGE_EMAIL_SENDING)
    store.add_event("access_package_emailed", recipient="the subject's email identity", refused=bool(refused),
                    message_id=entry["message_id"], try_number=try_number)
    log.info("Access package emailed to the data subject (Message-ID %s)%s", entry["message_id"],
             "; the server refused the address" if refused else "")
    return entry
