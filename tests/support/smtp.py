"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, and the Airflow connection to it."""

from __future__ import annotations

import email
from dataclasses import dataclass, field
from email.message import Message

from aiosmtpd.controller import Controller


@dataclass
class Received:
    envelope_to: list[str]
    message: Message

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        raise AssertionError(f"no {content_type} part")


@dataclass
class Collector:
    """The server's DATA handler: keeps every message (a test may wrap it to refuse some)."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(Received(list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


class SmtpServer:
    """A real SMTP server on a fixed loopback port that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = Collector()
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def connection_uri(self) -> str:
        return smtp_connection_uri(self.port)

    def start(self) -> None:
        if self._controller is None:
            self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
            self._controller.start()

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()
            self._controller = None


def smtp_connection_uri(port: int) -> str:
    """``AIRFLOW_CONN_SMTP_DEFAULT`` for a plain local server: no SSL, no STARTTLS, no retries, 5 s timeout."""
    return (f"smtp://127.0.0.1:{port}?disable_tls=true&disable_ssl=true&from_email=privacy%40example.com"
            "&timeout=5&retry_limit=0")
