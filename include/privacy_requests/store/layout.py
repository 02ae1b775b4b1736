"""Every key of the request store, in one place.

A request's state lives under ``{storage}/{request_id}/``. Results and ledgers are keyed by the step and the
collection's address, never by an Airflow task id, so renaming a task or a task group cannot silently
empty a report. Everything except ``report.json`` and the access package files is Fernet-encrypted.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model.graph import CollectionAddress

# -- shared by all requests, at the storage root ----------------------------------------------------------
SUBJECTS = "_subjects"  # subjects in flight (in_flight.py); not a valid request id, so never a request's folder
BATCHES = "batches"  # {storage}/batches/{batch_id}/: a batch's own store (batch/); reserved, never a request id
# Vendor digests (vendor_digest.py): one store per digest vendor under DIGESTS/<dataset>/, holding the pending
# requests' instructions (encrypted), each digest's fixed list, and its email ledger.
DIGESTS = "_digests"
PENDING = "pending"

# -- deliverables, in clear -------------------------------------------------------------------------------
REPORT = "report.json"
ACCESS_PACKAGE = "access_package.json"
CERTIFICATE = "certificate.html"  # the proof of erasure a DPO files (certificate.py)
ACCESS_PACKAGE_HTML = "access_package.html"
ACCESS_PACKAGE_ZIP = "access_package.zip"  # one CSV per collection
PACKAGE_FILES = {"json": ACCESS_PACKAGE, "html": ACCESS_PACKAGE_HTML, "csv": ACCESS_PACKAGE_ZIP}  # by format
# report.json's "status": retrying = a failed try with a retry to come, the request still open.
COMPLETE, REJECTED, FAILED, RETRYING = "complete", "rejected", "failed", "retrying"
# awaiting vendor digest = done here, but a vendor learns of the erasure only with its next digest email.
AWAITING_DIGEST = "awaiting vendor digest"
CLOSED = (COMPLETE, REJECTED)  # nothing more will happen: no deadline alert
FINISHED = (*CLOSED, FAILED, AWAITING_DIGEST)  # no longer at work: its subject is free
# A vendor email's status in report.json's "vendor_emails".
EMAIL_SENT = "sent"

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
# The ``send_once`` key of the access package emailed to the subject ('@' is in no dataset's fides key).
PACKAGE_EMAIL = "@subject.access_package"
PACKAGE_DELETED = f"{LEDGER}/access_package_deleted.json"  # the package expired (package/expiry.py): never again
COMPLETED = f"{LEDGER}/completed.json"  # when the report first said complete (the certificate's "Completed")
EXTENSIONS = f"{LEDGER}/extensions"  # deadline extensions, one create-only document each (statutory_clock.py)
_ERASURE_PREFIX = f"{LEDGER}/erasure."

# -- a dry run's records, kept: the vendor emails it rendered instead of sending ----------------------------
DRY_RUN = "dry_run"

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


def dry_run_email(dataset: str) -> str:
    """A vendor email a dry run rendered and did not send, for the request page."""
    return f"{DRY_RUN}/email.{dataset}.json"


def unverified(address: CollectionAddress) -> str:
    """A collection whose masked rows did not all verify: the next try masks only what is left."""
    return f"{LEDGER}/unverified.{_address(address)}.json"


def email_awaiting_digest(dataset: str) -> str:
    """A request's instructions handed to the vendor's digest: never handed twice (the request's store)."""
    return f"{LEDGER}/email.{dataset}.digest.json"


def pending(request_id: str) -> str:
    """A request's instructions waiting for the next digest (the digest vendor's store)."""
    return f"{PENDING}/{request_id}.json"


def digest_list(digest_id: str) -> str:
    """The requests one digest lists, fixed before it is sent (the digest vendor's store)."""
    return f"digests/{digest_id}.json"


def digest_email(digest_id: str) -> str:
    """The ``send_once`` key of one digest's email (the digest vendor's store)."""
    return f"digest.{digest_id}"


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


# -- a batch's store ({storage}/batches/{batch_id}/): REQUEST, SECRETS, results, ledger and events as above ----
BATCH_SUBJECTS = "subjects.jsonl"  # the accepted subjects in order (request id, identity); encrypted rows
BATCH_REJECTED = "rejected.jsonl"  # the subjects rejected alone (request id, position, reason)


def provenance_values(source: CollectionAddress, field: str) -> str:
    """A batch's distinct values of a field, each with the subjects it came from (encrypted rows)."""
    return f"{VALUES}/{_address(source)}.{field}.jsonl"


def subject_instructions(address: CollectionAddress) -> str:
    """A batch's per-subject instructions for a vendor collection (encrypted rows)."""
    return f"{INSTRUCTIONS}/{address.dataset}/{address.collection}.jsonl"


def email_subjects(dataset: str) -> str:
    """The positions of the batch's subjects listed in its email to a vendor."""
    return f"{LEDGER}/email.{dataset}.subjects.json"


def batch_report(batch_id: str) -> str:
    """A batch's report, relative to the storage root: its subjects and counts."""
    return f"{BATCHES}/{batch_id}/{REPORT}"


# -- California's DROP (drop/): {storage}/_drop/{run}/ per run, {storage}/_drop/suppression/ across runs ------
DROP = "_drop"  # reserved like BATCHES: not a valid request id, so never a request's folder
DROP_SUPPRESSION = "suppression"  # the hashes received (never identities), re-matched by every run
DROP_SUPPRESSION_ROWS = "drop/suppression"  # {id, list, hash, received, reported}
DROP_DOWNLOAD = "drop/download.json"  # what was received: date, broker, files, rows, due date
DROP_ITEMS = "drop/items"  # the download's work items {id, list, hash, file}
DROP_REMOVED = "drop/removed"  # identifiers consumers withdrew {id, hash, list_type}
DROP_REJECTED = "drop/rejected.json"  # malformed rows: file, line, reason (never their content)
DROP_OUTCOMES = "drop/outcomes"  # per work item: status, reason, subject (decided once per run)
DROP_MATCHED = "drop/matched.json"  # the decision is made: counts (a clear repeats nothing)
DROP_SUBJECTS = "drop/subjects"  # the consumers to erase {request_id, identity}: the batch's subjects
DROP_OPTED_OUT = f"{LEDGER}/drop_opt_out.json"  # the opt-out writes were done
DROP_RESPONSES = "responses"  # the response CSVs, in clear (work item ids and status codes only)
DROP_RUN_REPORT = "drop_report.json"
DROP_OUTCOMES_CSV = "drop_outcomes.csv"  # per work item: id, list, status, reason (in clear: no identifier)
DROP_CERTIFICATE = "drop_certificate.html"


def drop_upload(name: str) -> str:
    """The ledger entry of one response file sent through the API (its statuses, DROP's answer)."""
    return f"{LEDGER}/drop_upload.{name}.json"
