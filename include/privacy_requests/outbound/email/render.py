"""Render a vendor's erasure emails, HTML and plain text, from the package's Jinja2 templates: one request's,
and a digest that lists many requests (a batch's subjects, or single requests waiting for a vendor digest)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ...connectors.vendor import locatable

_TEMPLATES = Path(__file__).parent / "templates"
_html = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined)
_text = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=False, undefined=StrictUndefined,
                    keep_trailing_newline=True)


DIGEST_INLINE_LIMIT = 50  # requests listed in a digest's body; a longer digest lists them in a CSV attachment


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "text/csv"
    data: bytes


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class DigestEntry:
    """One request of a digest: its reference (the request id) and its instructions as recorded."""

    reference: str
    instructions: list[dict[str, Any]]


def render_erasure_email(
    *, organization: str, request_id: str, vendor_name: str | None, instructions: list[dict[str, Any]],
    test: bool = False, confirm_url: str | None = None,
) -> RenderedEmail:
    """Collections in a stable order; locator values joined for reading, markup in them escaped."""
    items = _annotated(instructions)
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


def render_digest_email(
    *, organization: str, reference: str, vendor_name: str | None, entries: list[DigestEntry],
) -> RenderedEmail:
    """One email for many requests, each with the instructions its single email would carry. Up to
    DIGEST_INLINE_LIMIT requests are listed in the body; beyond that the body gives the count and every
    instruction goes in ``erasure-requests.csv`` (one line per request, collection and locator field)."""
    ordered = sorted(entries, key=lambda e: e.reference)
    requests = [{"reference": e.reference, "instructions": _annotated(e.instructions)} for e in ordered]
    inline = len(requests) <= DIGEST_INLINE_LIMIT
    context = {"organization": organization, "reference": reference, "vendor_name": vendor_name,
               "requests": requests if inline else [], "count": len(requests)}
    attachments = () if inline else (Attachment("erasure-requests.csv", "text/csv", _digest_csv(requests)),)
    return RenderedEmail(
        subject=f"Data erasure requests from {organization} ({reference}: {len(requests)} request(s))",
        html=_html.get_template("erasure_digest.html.j2").render(context),
        text=_text.get_template("erasure_digest.txt.j2").render(context),
        attachments=attachments,
    )


def _annotated(instructions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = locatable(instructions)
    return [{**i, "locatable": i["collection"] in found} for i in sorted(instructions, key=lambda i: i["collection"])]


def _digest_csv(requests: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["request_reference", "collection", "locator_field", "locator_values", "fields_to_erase"])
    for request in requests:
        for item in request["instructions"]:
            if not item["locatable"]:
                continue
            erase = " ".join(sorted(item["erase"]))
            for field, values in sorted(item["locators"].items()):
                writer.writerow([csv_cell(request["reference"]), csv_cell(item["name"]), csv_cell(field),
                                 csv_cell(" | ".join(str(v) for v in values)), csv_cell(erase)])
    return out.getvalue().encode()


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ tab or CR would be read as a formula
    (OWASP's CSV injection advice), so it gets a leading single quote."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


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
