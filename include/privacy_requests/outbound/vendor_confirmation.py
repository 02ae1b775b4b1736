"""The vendor confirmation loop (a vendor opts in with ``confirm: true``): after the erasure email the request
waits for the vendor's answer, reminds them every ``remind_every`` and fails as overdue after ``overdue_after``.

The vendor answers through a link in the email that needs no login: a token signed with a key derived from
the deployment's store key (HMAC-SHA256), naming the request, the vendor dataset, the round of waiting it
belongs to and when it expires. The rules here decide; Airflow only parks the task and sends the mail:

- A round begins with the email (round 1) or with a clear of a step that ended overdue or refused (then a
  reminder goes out at once). A round's deadline is its start plus ``overdue_after``; its reminders fall due
  every ``remind_every`` and each is claimed in the ledger before it is sent, so none is sent twice.
- A final answer (erased, or could not find the person) is recorded once and never asked again; a refusal
  closes the round (the step fails; a clear asks again). A token from another round, past its expiry, for
  an answered vendor, or with a wrong signature is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from ..errors import RequestError, TransientError
from ..model.settings import EmailTarget, PrivacyConfig
from ..request.asking import Answer, Question, duration
from ..request.request import PrivacyRequest
from ..store import layout
from ..store.store import RequestStore
from .email.message import build_message
from .email.render import render_reminder_email

log = logging.getLogger(__name__)
ERASED, NOT_FOUND, REFUSED = "Erased", "Could not find the person", "Refused"
OPTIONS = [ERASED, NOT_FOUND, REFUSED]
ANSWERS = {ERASED: "erased", NOT_FOUND: "not_found", REFUSED: "refused"}
NOTE = "note"
MAX_NOTE_LENGTH = 1000
# What a note may not hold, as an identity value may not (request.py): control characters (but line breaks
# and tabs, which a note may have), surrogates, line and paragraph separators.
_NOTE_FORBIDDEN = {"Cc", "Cs", "Zl", "Zp"}
Send = Callable[[EmailMessage], dict[str, Any]]


MAX_TOKEN_LENGTH = 2048  # a genuine token is a few hundred characters
_B64_PART = re.compile(r"[A-Za-z0-9_-]+")


class TokenRefused(Exception):
    """A confirmation link that may not answer: forged, expired, replayed or from an earlier round."""


# -- signed links ----------------------------------------------------------------------------------------
def signing_key(store_key: str | bytes) -> bytes:
    """The links' key, derived from the store key (a deployment secret): nothing more to provision, and a
    link says nothing about the store key itself."""
    secret = store_key.encode() if isinstance(store_key, str) else store_key
    return hmac.new(secret, b"vendor-confirmation-link", hashlib.sha256).digest()


@dataclass(frozen=True)
class Claims:
    request_id: str
    dataset: str
    round: int
    expires: datetime


def make_token(key: bytes, claims: Claims) -> str:
    payload = json.dumps({"r": claims.request_id, "d": claims.dataset, "n": claims.round,
                          "e": int(claims.expires.timestamp())}, separators=(",", ":")).encode()
    signature = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def read_token(key: bytes, token: str, now: datetime) -> Claims:
    """The claims of a genuine, unexpired token; else TokenRefused (saying why, for the log).

    Decoded strictly: exactly two parts, each in the URL-safe base64 alphabet and in the one spelling
    ``make_token`` writes (no padding, no other character, no unused bits set), the signature exactly 32
    bytes. A link with anything appended or inserted is another link, and refused."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise TokenRefused("malformed token")
    payload_part, _, signature_part = token.partition(".")
    payload, signature = _unb64(payload_part), _unb64(signature_part)
    if len(signature) != hashlib.sha256().digest_size:
        raise TokenRefused("malformed token")
    if not hmac.compare_digest(signature, hmac.new(key, payload, hashlib.sha256).digest()):
        raise TokenRefused("bad signature")
    try:
        body = json.loads(payload)
        claims = Claims(body["r"], body["d"], body["n"], datetime.fromtimestamp(body["e"], UTC))
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        raise TokenRefused("malformed claims") from None
    if now >= claims.expires:
        raise TokenRefused(f"expired at {claims.expires.isoformat()}")
    return claims


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """The bytes of one part, only from its canonical spelling; else TokenRefused."""
    if not _B64_PART.fullmatch(text):
        raise TokenRefused("malformed token")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):
        raise TokenRefused("malformed token") from None
    if _b64(raw) != text:  # unused bits set: another spelling of the same bytes
        raise TokenRefused("malformed token")
    return raw


@dataclass(frozen=True)
class Links:
    """Makes the link a vendor opens: ``page`` (the plugin's absolute URL) with a signed token."""

    key: bytes
    page: str

    def __call__(self, request_id: str, dataset: str, round_: int, expires: datetime) -> str:
        return f"{self.page}?token={quote(make_token(self.key, Claims(request_id, dataset, round_, expires)))}"


# -- the rounds of waiting -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wait:
    round: int
    started: datetime

    def deadline(self, target: EmailTarget) -> datetime:
        return self.started + target.overdue_after


@dataclass(frozen=True)
class Step:
    """What to do now: ``remind`` (reminder ``number``), ``overdue``, or ``wait`` for ``timeout``."""

    kind: str
    timeout: timedelta = timedelta(0)
    number: int = 0


def open_round(store: RequestStore, dataset: str, sent: dict[str, Any], now: datetime) -> Wait:
    """The round to wait in: round 1 from the email's time, or the next one, from now, when the current round
    was closed (overdue or refused) and the step runs again after a clear."""
    record = store.get(layout.confirmation_wait(dataset))
    if record is None:
        record = {"round": 1, "started": sent["time"]}
        store.put(layout.confirmation_wait(dataset), record)
    elif store.exists(layout.confirmation_closed(dataset, record["round"])):
        record = {"round": record["round"] + 1, "started": now.isoformat()}
        store.put(layout.confirmation_wait(dataset), record)
        store.add_event("vendor_confirmation_reopened", dataset=dataset, round=record["round"])
    return Wait(record["round"], datetime.fromisoformat(record["started"]))


def next_step(store: RequestStore, dataset: str, wait: Wait, target: EmailTarget, now: datetime) -> Step:
    """Overdue past the round's deadline; else the latest reminder due and not sent yet; else wait until the
    next reminder or the deadline, whichever comes first. A round opened by a clear reminds at once."""
    deadline = wait.deadline(target)
    if now >= deadline:
        return Step("overdue")
    latest = int((now - wait.started) / target.remind_every)
    first = 0 if wait.round > 1 else 1
    if latest >= first and not store.exists(layout.confirmation_reminder(dataset, wait.round, latest)):
        return Step("remind", number=latest)
    upcoming = wait.started + (latest + 1) * target.remind_every
    return Step("wait", timeout=min(upcoming, deadline) - now)


def send_reminder(request: PrivacyRequest, dataset: str, wait: Wait, number: int, *, links: Links,
                  sender: Callable[[], str], send: Send) -> bool:
    """Reminder ``number`` of the round, at most once: claimed in the ledger first; a server that refused it
    sent nothing, so the claim goes and a retry may send. Returns whether it was sent now."""
    store, target = request.store, request.config.mapping(dataset).email
    assert target is not None
    claim = layout.confirmation_reminder(dataset, wait.round, number)
    if not store.create(claim, {"time": datetime.now(UTC).isoformat()}):
        return False
    sent = store.get(layout.email_sent(dataset))
    rendered = render_reminder_email(
        organization=request.config.settings.organization, request_id=request.request_id,
        vendor_name=target.vendor_name, first_sent=sent["time"][:10],
        confirm_url=links(request.request_id, dataset, wait.round, wait.deadline(target)),
        deadline=wait.deadline(target).date().isoformat())
    message = build_message(rendered, sender=sender(), to=target.to)
    message["In-Reply-To"] = message["References"] = sent["message_id"]
    try:
        send(message)
    except (RequestError, TransientError):
        store.delete(claim)
        raise
    store.add_event("vendor_reminder_sent", dataset=dataset, round=wait.round, number=number,
                    message_id=message["Message-ID"])
    log.info("Reminder %d (round %d) for '%s' sent (Message-ID %s)", number, wait.round, dataset,
             message["Message-ID"])
    return True


def close_overdue(store: RequestStore, dataset: str, wait: Wait, target: EmailTarget) -> bool:
    """Close the round as overdue; True the first time (then the DPO is told, once per round)."""
    if not store.create(layout.confirmation_closed(dataset, wait.round),
                        {"reason": "overdue", "time": datetime.now(UTC).isoformat()}):
        return False
    store.add_event("vendor_confirmation_overdue", dataset=dataset, round=wait.round,
                    waiting_since=wait.started.isoformat(), overdue_after=duration(target.overdue_after))
    return True


def overdue_error(dataset: str, target: EmailTarget, wait: Wait) -> str:
    return (f"vendor '{target.vendor_name or dataset}' has not confirmed the erasure within "
            f"{duration(target.overdue_after)} (waiting since {wait.started.isoformat(timespec='minutes')}): "
            "overdue. Clear this task to remind the vendor and wait again")


def overdue_message(request_id: str, dataset: str, target: EmailTarget, wait: Wait) -> dict[str, str]:
    """Subject and HTML for the DPO's notifier (no personal data: the request and vendor only)."""
    return {"subject": f"Privacy request {request_id}: vendor {target.vendor_name or dataset} is overdue",
            "html_content": f"<p>{_escape(overdue_error(dataset, target, wait))}.</p>"
                            "<p>Open it under Browse, Privacy requests in Airflow.</p>"}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- the question and its answer -------------------------------------------------------------------------
def confirmation_question(request: PrivacyRequest, dataset: str, sent: dict[str, Any], timeout: timedelta) -> Question:
    """What staff see under Required actions: which email to confirm; no identity value."""
    target = request.config.mapping(dataset).email
    assert target is not None
    vendor = target.vendor_name or dataset
    return Question(
        subject=f"Has {vendor} erased privacy request {request.request_id}?",
        body=f"The erasure instructions went to **{vendor}** on {sent['time'][:16].replace('T', ' ')} UTC "
             f"(Message-ID `{sent['message_id']}`). The vendor answers through the link in that email; answer "
             "here on their behalf only when they told you another way.",
        options=OPTIONS, timeout=timeout,
        form={NOTE: {"default": "", "type": ["null", "string"], "maxLength": MAX_NOTE_LENGTH, "title": "Note",
                     "description": "Optional: what the vendor said (kept in the request's report)."}})


def record_answer(request: PrivacyRequest, dataset: str, answer: Answer, wait: Wait,
                  now: datetime) -> dict[str, Any]:
    """The vendor's answer, recorded once with the response time. A refusal closes the round and fails."""
    store = request.store
    kind = ANSWERS.get(answer.option)
    if kind is None:
        raise RequestError(f"'{answer.option}' is not an answer to a vendor confirmation; one of "
                           f"{', '.join(OPTIONS)}")
    note = str(answer.values.get(NOTE) or "").strip()[:MAX_NOTE_LENGTH] or None
    sent = store.get(layout.email_sent(dataset))
    entry = {"dataset": dataset, "answer": kind, "by": answer.by, "note": note, "time": now.isoformat(),
             "round": wait.round,
             "response_seconds": int((now - datetime.fromisoformat(sent["time"])).total_seconds())}
    if kind == "refused":
        store.create(layout.confirmation_closed(dataset, wait.round), {"reason": "refused", "time": entry["time"]})
        store.add_event("vendor_refused", **entry)
        raise RequestError(f"vendor '{dataset}' refused to erase (see the note in the report). Settle it with "
                           "the vendor, then clear this task to remind them and wait again")
    store.put(layout.confirmation(dataset), entry)
    store.add_event("vendor_confirmed", **entry)
    log.info("Vendor '%s' answered %s after %d s (by %s)", dataset, kind, entry["response_seconds"], answer.by)
    return entry


# -- the link's page -------------------------------------------------------------------------------------
def answerable(store: RequestStore, claims: Claims) -> dict[str, Any]:
    """What the link's page shows (the email's time and Message-ID), if the token may still answer: not
    after a final answer (a replay), nor for a round that is over. Else TokenRefused."""
    if store.exists(layout.confirmation(claims.dataset)):
        raise TokenRefused("already answered")
    sent = store.get(layout.email_sent(claims.dataset))
    if sent is None:
        raise TokenRefused("no email was sent to this vendor")
    record = store.get(layout.confirmation_wait(claims.dataset)) or {"round": 1}
    if claims.round != record["round"] or store.exists(layout.confirmation_closed(claims.dataset, claims.round)):
        raise TokenRefused(f"round {claims.round} is over")
    return sent


def check_note(note: Any) -> str | None:
    """A vendor's note as it may be recorded (stripped; None when empty), or RequestError saying what is wrong
    without echoing it: the rules of an identity value (no control character but line breaks and tabs, no
    surrogate or line/paragraph separator; PostgreSQL refuses a NUL in the answer it stores) and at most
    MAX_NOTE_LENGTH characters."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise RequestError("the note must be text")
    if len(note) > MAX_NOTE_LENGTH:
        raise RequestError(f"the note is longer than {MAX_NOTE_LENGTH} characters")
    if any(unicodedata.category(c) in _NOTE_FORBIDDEN and c not in "\n\r\t" for c in note):
        raise RequestError("the note contains a control character")
    return note.strip() or None


def vendor_responses(config: PrivacyConfig, store: RequestStore) -> list[dict[str, Any]]:
    """Per vendor asked to confirm: its answer and response time, or how long it has been awaited."""
    now = datetime.now(UTC)
    result = []
    for dataset in config.email_datasets:
        target = config.mapping(dataset).email
        sent = store.get(layout.email_sent(dataset)) if target and target.confirm else None
        if not sent:
            continue
        answer = store.get(layout.confirmation(dataset))
        waited = answer["response_seconds"] if answer else (now - datetime.fromisoformat(sent["time"])).total_seconds()
        result.append({"dataset": dataset, "vendor": target.vendor_name or dataset,
                       "answer": answer["answer"] if answer else "awaiting vendor",
                       "days": round(waited / 86400, 1)})
    return result
