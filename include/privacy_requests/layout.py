"""Every key of the request store, in one place.

A request's state lives under ``{storage}/{request_id}/``. Results and ledgers are keyed by the step and the
collection's address, never by an Airflow task id, so renaming a task or a task group cannot silently
empty a report. Everything except ``report.json`` and ``access_package.json`` is Fernet-encrypted.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import CollectionAddress

# -- shared by all requests, at the storage root ----------------------------------------------------------
SUBJECTS = "_subjects"  # subjects in flight (in_flight.py); not a valid request id, so never a request's folder

# -- deliverables, in clear -------------------------------------------------------------------------------
REPORT = "report.json"
ACCESS_PACKAGE = "access_package.json"
# report.json's "status": retrying = a failed try with a retry to come, the request still open.
COMPLETE, REJECTED, FAILED, RETRYING = "complete", "rejected", "failed", "retrying"
CLOSED = (COMPLETE, REJECTED)  # nothing more will happen: no deadline alert
FINISHED = (*CLOSED, FAILED)  # no longer at work: its subject is free

# -- the request's own records ----------------------------------------------------------------------------
REQUEST = "request.json"  # who owns the request id (the run), its policy and when it was received
SECRETS = "secrets.json"  # per-request masking secrets
DERIVED_IDENTITY = "derived_identity.json"  # identities added by two-way pre-execution webhooks
HALTED = "halted.json"  # which pre-execution webhook halted the request, until it is resumed
EVENTS = "events"  # the audit trail, one document per event

# -- the ledger: side effects done once, kept after the request finishes ----------------------------------
LEDGER = "ledger"
APPROVAL = f"{LEDGER}/approval.json"
DEADLINE_ALERT = f"{LEDGER}/deadline_alert.json"
EXTENSIONS = f"{LEDGER}/extensions"  # deadline extensions, one create-only document each (statutory_clock.py)
_ERASURE_PREFIX = f"{LEDGER}/erasure."

# -- intermediate data, deleted when the request finishes -------------------------------------------------
ROWS, VALUES, INSTRUCTIONS, RESULTS = "rows", "values", "instructions", "results"
INTERMEDIATE = (ROWS, VALUES, INSTRUCTIONS, SECRETS)

ACCESS, ERASURE = "access", "erasure"  # the per-collection steps


def _address(address: CollectionAddress) -> str:
    return f"{address.dataset}.{address.collection}"


def rows(address: CollectionAddress) -> str:
    """The rows found in a collection (encrypted chunks)."""
    return f"{ROWS}/{_address(address)}.jsonl"


def values(source: CollectionAddress, field: str) -> str:
    """The distinct values of a field, kept for the collections it feeds."""
    return f"{VALUES}/{_address(source)}.{field}.json"


def instruction(address: CollectionAddress) -> str:
    """A vendor collection's erasure instruction."""
    return f"{INSTRUCTIONS}/{address.dataset}/{address.collection}.json"


def instructions(dataset: str) -> str:
    """The folder of a vendor dataset's instructions."""
    return f"{INSTRUCTIONS}/{dataset}"


def result(step: str, address: CollectionAddress | None = None) -> str:
    """A step's counts for the report: per collection for access and erasure, else per step."""
    return f"{RESULTS}/{step}.{_address(address)}.json" if address else f"{RESULTS}/{step}.json"


def erasure_ledger(address: CollectionAddress) -> str:
    """A collection erased (or confirmed erased by a person): never erased twice."""
    return f"{_ERASURE_PREFIX}{_address(address)}.json"


def is_erasure_ledger(name: str) -> bool:
    return name.startswith(_ERASURE_PREFIX)


def email_sent(dataset: str) -> str:
    """A vendor email sent: never sent twice."""
    return f"{LEDGER}/email.{dataset}.json"


def email_sending(dataset: str) -> str:
    """A vendor email being sent: present only between the send and its record."""
    return f"{LEDGER}/email.{dataset}.sending.json"


def email_message(dataset: str) -> str:
    """The vendor email as sent (HTML and text), for the request page."""
    return f"{LEDGER}/email.{dataset}.message.json"


def confirmation(dataset: str) -> str:
    """A vendor's final answer to the confirmation link (erased, or could not find the person): never asked again."""
    return f"{LEDGER}/confirmation.{dataset}.json"


def confirmation_wait(dataset: str) -> str:
    """The current round of waiting for a vendor's confirmation: its number and when it began."""
    return f"{LEDGER}/confirmation.{dataset}.wait.json"


def confirmation_closed(dataset: str, round_: int) -> str:
    """A round that ended without a final answer (overdue, or the vendor refused): a clear starts the next."""
    return f"{LEDGER}/confirmation.{dataset}.closed.{round_}.json"


def confirmation_reminder(dataset: str, round_: int, number: int) -> str:
    """A reminder sent (claimed before sending): never sent twice."""
    return f"{LEDGER}/confirmation.{dataset}.reminder.{round_}.{number}.json"


def webhook_called(step: str, name: str) -> str:
    """A policy webhook called successfully: never called twice."""
    return f"{LEDGER}/webhook.{step}.{name}.json"


def event(now: datetime, unique: str) -> str:
    """One audit event; names sort by time, so the trail reads in order."""
    return f"{EVENTS}/{now.strftime('%Y%m%dT%H%M%S%f')}-{unique}.json"
