"""Send a rendered email (multipart/alternative: text + HTML) over an Airflow SMTP connection.

The SMTP provider's hook builds HTML-only messages, so we build the message ourselves and send it over the
hook's client: connection, TLS/SSL settings and login stay the provider's.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from airflow.providers.smtp.hooks.smtp import SmtpHook

from ..errors import TransientError
from .render import RenderedEmail


def build_message(rendered: RenderedEmail, *, sender: str, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def send(rendered: RenderedEmail, *, conn_id: str, to: list[str], sender: str | None) -> EmailMessage:
    """Send once, from ``sender`` or else the connection's ``from_email``; connection and refusal
    problems become TransientError so Airflow retries."""
    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            msg = build_message(rendered, sender=sender or hook.from_email or "", to=to)
            hook._smtp_client.send_message(msg)  # the provider's own test_connection uses this client
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP connection '{conn_id}': {type(exc).__name__}: {exc}") from exc
    return msg
