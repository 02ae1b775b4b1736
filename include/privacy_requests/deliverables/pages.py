"""What the UI plugins read from storage for a run: its report, the batch's report, who owns a request id, the
access package's files, the vendor emails as sent, the deadline extensions and the vendors' answers.

Framework-free, so each read has a unit test: the plugins hand in the configuration, the storage root and the
store key (None where the deployment has not set one: the pages then show what Airflow holds). A run refused
for reusing another run's request id gets nothing of that other request from any of these reads.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ..errors import ForeignRequestError
from ..model.settings import PrivacyConfig
from ..outbound.vendor_confirmation import vendor_responses
from ..request.statutory_clock import extensions
from ..store import layout
from ..store.store import RequestStore, StoragePath, is_request_folder

log = logging.getLogger(__name__)
SUBJECT = "the subject's email identity"  # shown instead of the address of the access package's email


class NoStoreKey(Exception):
    """The deployment has no store key: nothing encrypted can be read or written."""


@dataclass
class StoreReader:
    """Reads for the pages, over one storage root. Batch reports are cached by their size and modification
    time: a batch of 100,000 subjects has a report of megabytes, and the overview needs only its counts."""

    config: PrivacyConfig
    root: StoragePath
    key: str | None
    _batch_cache: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # pages run in a thread pool

    # -- in clear: the deliverables ---------------------------------------------------------------------
    def deliverable(self, request_id: str, name: str) -> StoragePath:
        return self.root / request_id / name

    def report(self, request_id: str) -> dict[str, Any] | None:
        """A request's report.json, or None where none was written (or the id names no request folder)."""
        if not is_request_folder(request_id):
            return None
        return _read_json(self.deliverable(request_id, layout.REPORT))

    def batch_report(self, batch_id: str) -> dict[str, Any] | None:
        """A batch's report.json, read again only when the file changed."""
        if not is_request_folder(batch_id):
            return None
        path = self.root / layout.batch_report(batch_id)
        stamp = _stamp(path)
        if stamp is None:
            return None
        with self._lock:
            cached = self._batch_cache.get(batch_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        report = _read_json(path)
        if report is not None:
            with self._lock:
                if len(self._batch_cache) >= 64:
                    self._batch_cache.pop(next(iter(self._batch_cache)))
                self._batch_cache[batch_id] = (stamp, report)
        return report

    def packages(self, request_id: str) -> list[dict[str, str]]:
        """The access package's files that exist for a request, by format."""
        return [{"format": fmt, "file": name} for fmt, name in layout.PACKAGE_FILES.items()
                if self.deliverable(request_id, name).exists()]

    def has_certificate(self, request_id: str) -> bool:
        return self.deliverable(request_id, layout.CERTIFICATE).exists()

    # -- encrypted: the request's store -----------------------------------------------------------------
    def store(self, request_id: str) -> RequestStore | None:
        """The request's store, or None where no store key is set or the id names no request folder."""
        if not self.key or not is_request_folder(request_id):
            return None
        return RequestStore(self.root, request_id, self.key)

    def owner(self, request_id: str) -> str | None:
        """The run that owns a request id (``request.json``, claimed once), or None where nobody has claimed
        it yet or the store cannot be read (no key, another key)."""
        store = self.store(request_id)
        try:
            record = store.get(layout.REQUEST) if store is not None else None
        except Exception:  # a store written with another key: the page shows what Airflow holds
            log.debug("No request record for %s", request_id, exc_info=True)
            return None
        return record.get("run_id") if isinstance(record, dict) else None

    def own_request_id(self, run_id: str, request_id: str) -> str | None:
        """The run's request id when the run owns it (or nobody does yet); None for a run refused for reusing
        another run's id, so no route serves that other request's files for it."""
        return request_id if self.owner(request_id) in (None, run_id) else None

    def owned_store(self, run_id: str, request_id: str) -> RequestStore:
        """The store of the request ``run_id`` owns, for a change made on the run's behalf (a deadline
        extension). NoStoreKey without a key; ForeignRequestError when another run owns the id."""
        store = self.store(request_id)
        if store is None:
            raise NoStoreKey("no store key is set" if not self.key else f"'{request_id}' names no request folder")
        record = store.get(layout.REQUEST)
        if isinstance(record, dict) and record.get("run_id") != run_id:
            raise ForeignRequestError(f"run '{run_id}' was refused for reusing request id '{request_id}', which "
                                      f"belongs to run '{record.get('run_id')}': nothing was changed")
        return store

    def clock_and_vendors(self, request_id: str) -> dict[str, Any]:
        """The deadline extensions and the vendors' confirmations (no personal data); {} where unreadable."""
        store = self.store(request_id)
        if store is None:
            return {}
        try:
            return {"extensions": extensions(store), "vendors": vendor_responses(self.config, store)}
        except Exception:  # a store written with another key: show the rest
            log.debug("No clock or vendor answers for %s", request_id, exc_info=True)
            return {}

    def emails(self, request_id: str, bodies: bool) -> list[dict[str, Any]]:
        """Each email sent (the vendors', then the subject's package letter; kept encrypted in the request's
        ledger), or rendered and not sent by a dry run; with its HTML if ``bodies`` (it names the identity)."""
        store = self.store(request_id)
        if store is None:
            return []
        emails = []
        for dataset in [*self.config.email_datasets, layout.PACKAGE_EMAIL]:  # the vendors', then the subject's
            sent = store.get(layout.email_sent(dataset))
            body = store.get(layout.email_message(dataset)) if bodies else {"html": ""}
            rendered = None if sent else store.get(layout.dry_run_email(dataset))
            if dataset == layout.PACKAGE_EMAIL:  # the subject's own address is not shown in the list
                sent = sent and {**sent, "recipients": [SUBJECT]}
                rendered = rendered and {**rendered, "recipients": [SUBJECT]}
            if sent and body:
                emails.append({"dataset": dataset, "subject": sent["subject"], "to": ", ".join(sent["recipients"]),
                               "message_id": sent["message_id"], "time": sent["time"], "html": body["html"]})
            elif rendered:
                emails.append({"dataset": dataset, "subject": rendered["subject"],
                               "to": ", ".join(rendered["recipients"]), "message_id": None,
                               "time": rendered["time"], "html": rendered["html"] if bodies else ""})
        return emails


def _read_json(path: StoragePath) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            return json.loads(fh.read())
    except FileNotFoundError:
        return None


def _stamp(path: Any) -> tuple[Any, ...] | None:
    """(size, modification time) of a file, None when it does not exist."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if isinstance(info, dict):  # fsspec's info
        return info.get("size"), info.get("mtime") or info.get("LastModified") or info.get("ETag")
    return info.st_size, getattr(info, "st_mtime_ns", None) or info.st_mtime
