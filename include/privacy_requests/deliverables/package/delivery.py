"""The access package sent to the data subject by email (``access_package: {deliver: email}``), exactly once.

The rule of every email that leaves (vendor_email.send_once). The subject's address is the request's ``email``
identity; it is never logged, nor written anywhere in clear (the ledger is encrypted; the event says only "the
subject's email identity").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ...outbound.email.render import Attachment, RenderedEmail
from ...outbound.vendor_email import Composed, Send, send_once
from ...request.request import PrivacyRequest
from ...store import layout

log = logging.getLogger(__name__)
SHOWN_TO = "the subject's email identity"  # what public records say instead of the address
_TEMPLATES = Path(__file__).parent / "templates"
_html = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined)
_text = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=False, undefined=StrictUndefined,
                    keep_trailing_newline=True)


def package_email(request: PrivacyRequest) -> RenderedEmail:
    """A short letter (text and HTML) with ``access_package.html`` attached."""
    context = {"organization": request.config.settings.organization, "request_id": request.request_id}
    with (request.store.base / layout.ACCESS_PACKAGE_HTML).open("rb") as fh:
        attachment = Attachment(layout.ACCESS_PACKAGE_HTML, "text/html", fh.read())
    return RenderedEmail(
        subject=f"Your personal data held by {context['organization']} (request {request.request_id})",
        html=_html.get_template("package_email.html.j2").render(context),
        text=_text.get_template("package_email.txt.j2").render(context),
        attachments=(attachment,),
    )


def deliver_package(request: PrivacyRequest, *, sender: Callable[[], str], send: Send,
                    try_number: int) -> dict[str, Any] | None:
    """Email the HTML package to the subject when the policy asks; returns the ledger entry (sent now or
    before), or None when the policy does not deliver or the request gives no email address."""
    if request.policy.access_package.deliver != "email":
        return None
    to = request.identity.get("email")
    if not to and not request.store.exists(layout.email_sent(layout.PACKAGE_EMAIL)):
        request.store.add_event("access_package_not_emailed", reason="the request gives no email identity")
        log.warning("The policy delivers the access package by email, but the request gives no email identity: "
                    "the package stays in storage only")
        return None
    if request.conf.dry_run:
        return render_only(request, to)
    return send_once(request.store, layout.PACKAGE_EMAIL,
                     lambda: Composed(package_email(request), [to], {"attachments": 1},
                                      event="access_package_emailed", shown_to=SHOWN_TO),
                     sender=sender, send=send, try_number=try_number)


def render_only(request: PrivacyRequest, to: str) -> dict[str, Any]:
    """A dry run: the letter is rendered and kept (encrypted, like a dry run's vendor emails) for the request
    page, and sent to nobody; no "sending" marker, no ledger entry. The public event names no address."""
    rendered = package_email(request)
    entry = {"dataset": layout.PACKAGE_EMAIL, "recipients": [to], "subject": rendered.subject,
             "time": datetime.now(UTC).isoformat(), "attachments": [a.filename for a in rendered.attachments]}
    request.store.put(layout.dry_run_email(layout.PACKAGE_EMAIL), {**entry, "html": rendered.html,
                                                                   "text": rendered.text})
    request.store.add_event("email_rendered", dataset=layout.PACKAGE_EMAIL, recipients=[SHOWN_TO], dry_run=True)
    log.info("Dry run: the access package email to the subject was rendered and kept, not sent")
    return {**entry, "recipients": [SHOWN_TO], "message_id": None}
