"""``certificate.html``: the proof of a request a DPO files or prints, written by ``finalize`` next to
report.json. It is self-contained (inline style, no script, no link it needs), escaped (Jinja2 autoescape),
and carries the SHA-256 of report.json, so anyone can check that it describes that report and no other.

Built from the report alone: what was found, masked and verified per collection, each vendor email, the
approvals, the webhooks, and whether the legal deadline was met. Nothing personal: the report holds the
identity's types, never its values.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

_pages = Environment(loader=FileSystemLoader(Path(__file__).parent / "certificate_templates"), autoescape=True,
                     undefined=StrictUndefined)


def report_digest(report_json: str) -> str:
    """The SHA-256 of report.json as written (``sha256sum report.json`` prints the same)."""
    return hashlib.sha256(report_json.encode()).hexdigest()


def render_certificate(*, organization: str, policy_name: str, report: dict[str, Any], report_json: str,
                       received: datetime | None, due: datetime | None, issued: datetime,
                       completed: datetime | None = None) -> str:
    """The certificate of one finished request, from its report as written (``report_json``). ``due`` includes
    the extensions granted; ``completed`` is when the request completed (None while a vendor still waits for
    its digest: the deadline is then missed only once ``issued`` is past it)."""
    events = report["events"]
    collections = [{
        "collection": c["collection"], "kind": c["kind"], "found": c["access"].get("rows"),
        "erasure": c["erasure"].get("status"), "masked": c["erasure"].get("masked"),
        "verified": c["erasure"].get("verified"),
    } for c in report["collections"]]
    return _pages.get_template("certificate.html.j2").render(
        organization=organization, policy_name=policy_name, report=report, collections=collections,
        emails=[e for e in events if e["event"] == "email_sent"],
        reviews=[e for e in events if e["event"] in ("request_approved", "request_rejected")],
        webhooks=[e for e in events if e["event"] == "webhook_called"],
        received=received, due=due, issued=issued, completed=completed,
        deadline_met=None if due is None else completed <= due if completed else None if issued <= due else False,
        digest=report_digest(report_json))
