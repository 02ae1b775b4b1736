"""Render a vendor's erasure email, HTML and plain text, from the package's Jinja2 templates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..connectors.vendor import locatable

_TEMPLATES = Path(__file__).parent / "templates"
_html = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined)
_text = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=False, undefined=StrictUndefined,
                    keep_trailing_newline=True)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def render_erasure_email(
    *, organization: str, request_id: str, vendor_name: str | None, instructions: list[dict[str, Any]],
    test: bool = False, confirm_url: str | None = None,
) -> RenderedEmail:
    """Collections in a stable order; locator values joined for reading, markup in them escaped."""
    found = locatable(instructions)
    items = [{**i, "locatable": i["collection"] in found} for i in sorted(instructions, key=lambda i: i["collection"])]
    context = {
        "organization": organization,
        "request_id": request_id,
        "vendor_name": vendor_name,
        "instructions": items,
        "test": test,
        "confirm_url": confirm_url,  # the vendor confirmation link (vendor_confirmation.py), when the vendor opted in
    }
    prefix = "[TEST] " if test else ""
    subject = f"{prefix}Data erasure request from {organization} ({request_id})"
    return RenderedEmail(
        subject=subject,
        html=_html.get_template("erasure_request.html.j2").render(context),
        text=_text.get_template("erasure_request.txt.j2").render(context),
    )


def render_reminder_email(*, organization: str, request_id: str, vendor_name: str | None, first_sent: str,
                          confirm_url: str, deadline: str) -> RenderedEmail:
    """A reminder to confirm an erasure: the request's reference and the link, no personal data (the first
    email, which the reminder answers in its thread, holds the instructions)."""
    context = {"organization": organization, "request_id": request_id, "vendor_name": vendor_name,
               "first_sent": first_sent, "confirm_url": confirm_url, "deadline": deadline}
    return RenderedEmail(
        subject=f"Reminder: please confirm data erasure request from {organization} ({request_id})",
        html=_html.get_template("confirmation_reminder.html.j2").render(context),
        text=_text.get_template("confirmation_reminder.txt.j2").render(context),
    )
