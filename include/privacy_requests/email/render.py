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
    test: bool = False,
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
    }
    prefix = "[TEST] " if test else ""
    subject = f"{prefix}Data erasure request from {organization} ({request_id})"
    return RenderedEmail(
        subject=subject,
        html=_html.get_template("erasure_request.html.j2").render(context),
        text=_text.get_template("erasure_request.txt.j2").render(context),
    )
