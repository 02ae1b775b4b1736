"""The SMTP server as the engine's email rules see it (the send they are handed): what was sent, or a refusal."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any


class Outbox:
    """A send callable: keeps each message, or raises ``fail`` (set it to make the server refuse)."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.sent: list[EmailMessage] = []
        self.fail = fail

    def __call__(self, message: EmailMessage) -> dict[str, Any]:
        if self.fail:
            raise self.fail
        self.sent.append(message)
        return {}

    def text(self, index: int) -> str:
        """The plain-text body of the ``index``-th message sent."""
        return self.sent[index].get_body(("plain",)).get_content()
