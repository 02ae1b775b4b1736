"""Build and send a vendor email (multipart/alternative: text + HTML) over an Airflow SMTP connection.

The SMTP provider's hook builds HTML-only messages, so we build the message ourselves and send it over the
hook's client: connection, TLS/SSL settings and login stay the provider's.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from airflow.providers.smtp.hooks.smtp import SmtpHook

from ..errors import RequestError, TransientError
from .render import RenderedEmail


def build_message(rendered: RenderedEmail, *, sender: str, to: list[str]) -> EmailMessage:
    """The message, with its Message-ID fixed before sending so the ledger can name it beforehand."""
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def send(message: EmailMessage, *, conn_id: str) -> dict[str, tuple[int, bytes]]:
    """Send once; returns the recipients the server refused (the others got it).

    Bad credentials or a refused sender are configuration errors (no retry); a server that cannot be
    reached or refuses every recipient is transient (Airflow retries).
    """
    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            return hook._smtp_client.send_message(message)  # the provider's own test_connection uses it
    except (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused) as exc:
        raise RequestError(f"SMTP connection '{conn_id}' refused: {type(exc).__name__}: {exc}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP connection '{conn_id}': {type(exc).__name__}: {exc}") from None
