"""The exactly-once rule of outside emails (vendor_email.send_once), on a real store, with the send handed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.errors import RequestError, TransientError
from include.privacy_requests.outbound.email.render import RenderedEmail
from include.privacy_requests.outbound.vendor_email import Composed, send_once
from include.privacy_requests.store import layout
from include.privacy_requests.store.store import RequestStore
from tests.support.outbox import Outbox

KEY = "vendor_x"


@pytest.fixture
def store(tmp_path: Path) -> RequestStore:
    return RequestStore(tmp_path, "batch-1", Fernet.generate_key())


def composed() -> Composed:
    return Composed(RenderedEmail("Subject", "<p>hi</p>", "hi"), ["v@example.com"], {"requests": 2})



def send(store: RequestStore, outbox: Outbox, compose: Any = composed, try_number: int = 1) -> dict[str, Any]:
    return send_once(store, KEY, compose, sender=lambda: "privacy@example.com", send=outbox, try_number=try_number)


def test_a_second_try_reports_the_first_send_and_sends_nothing(store: RequestStore) -> None:
    outbox = Outbox()
    first = send(store, outbox)
    again = send(store, outbox, try_number=2)
    assert len(outbox.sent) == 1 and again == first
    assert first["requests"] == 2 and first["message_id"] == outbox.sent[0]["Message-ID"]
    assert [e["event"] for e in store.events()] == ["email_sent"]


def test_a_server_that_said_no_lets_a_retry_send(store: RequestStore) -> None:
    with pytest.raises(TransientError):
        send(store, Outbox(TransientError("421 try later")))
    assert not store.exists(layout.email_sending(KEY))
    outbox = Outbox()
    send(store, outbox, try_number=2)
    assert len(outbox.sent) == 1


def test_a_try_that_stopped_mid_send_blocks_every_later_send(store: RequestStore) -> None:
    class Killed(BaseException):
        pass

    with pytest.raises(Killed):
        send(store, Outbox(Killed()))  # the worker died in the SMTP conversation: the marker stays
    outbox = Outbox()
    with pytest.raises(RequestError, match="check the SMTP server's log"):
        send(store, outbox, try_number=2)
    assert outbox.sent == []


def test_two_tries_racing_send_once(store: RequestStore) -> None:
    """The other try creates its marker between this try's check and its own marker: this one sends nothing."""
    outbox = Outbox()

    def compose_while_another_try_begins() -> Composed:
        store.create(layout.email_sending(KEY), {"message_id": "<other@x>", "time": "now", "try_number": 9})
        return composed()

    with pytest.raises(RequestError, match="another try is sending"):
        send(store, outbox, compose_while_another_try_begins)
    assert outbox.sent == [] and store.exists(layout.email_sending(KEY))
