"""The vendor email as a message: multipart/alternative (text + HTML), its Message-ID fixed before sending so
the ledger can name it beforehand. Sending it is the Airflow wing's (airflow/hooks.py)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

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
    for attachment in rendered.attachments:  # the body becomes multipart/mixed around the alternative
        maintype, subtype = attachment.content_type.split("/")
        msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return msg
