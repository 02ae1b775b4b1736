"""Access packages expire: ``access_package.{json,html,zip}`` hold the subject's data in clear, so each is kept
``access_package.keep_days`` days (the policy's, default 30) after it was written, then deleted by the retention
DAG (``privacy_request_retention``, task ``expire_access_packages``).

The deletion is an ``access_package_deleted`` event in the request's report (the files and their age, never
their content); a single request's report and certificate are written again through ``write_report``; a batch
subject's report (assembled by its batch, with no certificate) gets the event appended. What is deleted here is
the copy in storage: a package delivered by email (``deliver: email``) stays in the subject's inbox, and the
report says when it was emailed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ...model.policy import AccessPackageSettings
from ...model.settings import PrivacyConfig
from ...request.report import rewrite_report, subject_due, write_certificate
from ...store import layout
from ...store.store import RequestStore, StoragePath, is_request_folder

log = logging.getLogger(__name__)
EVENT = "access_package_deleted"


@dataclass
class Expired:
    """Counts of one pass, for the task's log and XCom (no request id, no data)."""

    requests: int = 0
    files: int = 0
    kept: int = 0  # requests whose package is still within its period
    errors: list[str] = field(default_factory=list)  # request ids that could not be read (wrong key...)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "files": self.files, "kept": self.kept, "errors": len(self.errors)}


def keep_days(config: PrivacyConfig, policy_key: str | None) -> int:
    """The request's policy's period; the default one when the policy is no longer configured."""
    policy = config.policies.get(policy_key or "")
    return (policy.access_package if policy else AccessPackageSettings()).keep_days


def expire_access_packages(config: PrivacyConfig, root: StoragePath, key: str | bytes,
                           now: datetime | None = None) -> Expired:
    """Delete every access package older than its policy's ``keep_days``, with an event in its report."""
    now, result = now or datetime.now(UTC), Expired()
    if not root.exists():
        return result
    for folder in root.iterdir():
        if not is_request_folder(folder.name) or not any((folder / f).exists() for f in layout.PACKAGE_FILES.values()):
            continue
        try:
            deleted = _expire(config, RequestStore(root, folder.name, key), now)
        except Exception as exc:  # one unreadable request must not keep every other package forever
            log.warning("Request %s: its access package could not be expired (%s)", folder.name, type(exc).__name__)
            result.errors.append(folder.name)
            continue
        if deleted:
            result.requests += 1
            result.files += deleted
        else:
            result.kept += 1
    log.info("Access packages: %d file(s) of %d request(s) deleted, %d request(s) kept within their period, "
             "%d unreadable", result.files, result.requests, result.kept, len(result.errors))
    return result


def _expire(config: PrivacyConfig, store: RequestStore, now: datetime) -> int:
    """Delete the request's package files when they are due; returns how many were deleted."""
    report = _read(store.base / layout.REPORT)
    if report is None or report.get("status") == layout.RETRYING:  # still at work: its own run may write it
        return 0
    record = store.get(layout.REQUEST) or {}
    written = [e for e in store.events() if e["event"] == "access_package_uploaded"]
    if not written:  # written by nobody we know of (no event): keep it until a person looks
        return 0
    written_at = datetime.fromisoformat(written[-1]["time"])
    days = keep_days(config, record.get("policy"))
    if now < written_at + timedelta(days=days):
        return 0
    files = [f for f in layout.PACKAGE_FILES.values() if store.exists(f)]
    for name in files:
        store.delete(name)
    emailed = any(e["event"] == "access_package_emailed" for e in store.events())
    store.put(layout.PACKAGE_DELETED, {"time": now.isoformat(), "files": files})
    event = store.add_event(EVENT, files=files, written_at=written_at.isoformat(), keep_days=days,
                            emailed_copy="the subject's inbox" if emailed else None)
    _report(config, store, event)
    return len(files)


def _report(config: PrivacyConfig, store: RequestStore, event: dict[str, Any]) -> None:
    """The event in the request's report: a single request's is written again (with its certificate); a batch
    subject's, which its batch assembled, gets the event appended."""
    report = _read(store.base / layout.REPORT)
    if report is None:
        return
    batch = any(e.get("event") == "request_validated" and e.get("batch_id") for e in report.get("events", ()))
    if not batch and rewrite_report(config, store) is not None:
        return
    report["events"] = [*report.get("events", ()), event]
    report["updated_at"] = event["time"]
    report_json = json.dumps(report, indent=2) + "\n"
    store.write_public(layout.REPORT, [report_json])
    _certify_subject(config, store, report, report_json)


def _certify_subject(config: PrivacyConfig, store: RequestStore, report: dict[str, Any], report_json: str) -> None:
    """A batch subject's certificate follows its rewritten report, with the dates its batch gave it: received
    with the batch, completed when the batch first completed."""
    record, policy = store.get(layout.REQUEST) or {}, config.policies.get(report.get("policy") or "")
    batch_id = next((e["batch_id"] for e in report.get("events", ()) if e.get("event") == "request_validated"
                     and e.get("batch_id")), None)
    if policy is None or not record.get("received") or batch_id is None:
        return
    received = datetime.fromisoformat(record["received"])
    completed = (store.beside(layout.BATCHES, batch_id).get(layout.COMPLETED) or {}).get("time")
    write_certificate(config, policy, store, report, report_json, received=received,
                      due=subject_due(policy, received, report["events"]),
                      completed=datetime.fromisoformat(completed) if completed and report.get("status") ==
                      layout.COMPLETE else None, now=datetime.now(UTC))


def _read(path: StoragePath) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with path.open("r") as fh:
        return json.load(fh)
