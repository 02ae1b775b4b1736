"""``report.json``: per collection and step, what happened; who approved or rejected the request; every audit
event (webhook calls, halts, manual entries...); nothing personal beyond the request's own identity types.

``write_report`` is the one writer of a request's report.json, and it writes ``certificate.html`` beside it
from the same text, so the certificate's SHA-256, status and due date never drift from the report: finalize,
a failure, a rejection, a vendor digest, a deadline extension and retention all write through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..model.graph import CollectionAddress
from ..model.policy import DELETE, Policy
from ..model.settings import PrivacyConfig
from ..store import layout
from ..store.store import RequestStore
from .certificate import render_certificate
from .request import PrivacyRequest, RequestConf
from .statutory_clock import due_date, request_due


@dataclass
class Report:
    body: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.body, indent=2, sort_keys=False) + "\n"

    @property
    def summary(self) -> dict[str, Any]:
        """Counts for XCom and the task log."""
        return {k: self.body[k] for k in ("rows_found", "rows_masked", "rows_deleted", "emails_sent")}


def build_report(request: PrivacyRequest, failure: dict[str, Any] | None = None) -> Report:
    """The request's report; ``failure`` (a checkpoint_failed event) makes it a report of a failed request,
    or of one retrying when the event says a retry is to come (``final`` False)."""
    config, store = request.config, request.store
    collections = [
        collection_entry(config.mapping(address.dataset).kind, address,
                         store.get(layout.result(layout.ACCESS, address)) or {},
                         store.get(layout.result(layout.ERASURE, address)) or {},
                         store.get(layout.erasure_ledger(address)) or {})
        for address in config.plan.order
    ]
    return assemble_report(request, collections, store.events(), failure)


def collection_entry(kind: str, address: CollectionAddress, access: dict[str, Any], erasure: dict[str, Any],
                     ledger: dict[str, Any]) -> dict[str, Any]:
    """One collection of a report, from its access and erasure results and its erasure ledger entry."""
    return {
        "collection": str(address),
        "kind": kind,
        "access": {k: access[k] for k in ("status", "rows", "seconds", "statements") if k in access},
        "erasure": {k: v for k, v in erasure.items() if k not in ("step", "time")} | _ledger_counts(ledger),
    }


def _ledger_counts(ledger: dict[str, Any]) -> dict[str, Any]:
    """The rows the ledger says erasure changed: masked, or deleted when the policy deleted the records."""
    if not ledger:
        return {}
    if ledger.get("action") == DELETE:
        return {"masked": 0, "deleted": ledger["masked"], "deleted_at_try": ledger["try_number"]}
    return {"masked": ledger["masked"], "masked_at_try": ledger["try_number"]}


def assemble_report(request: PrivacyRequest, collections: list[dict[str, Any]], events: list[dict[str, Any]],
                    failure: dict[str, Any] | None = None) -> Report:
    """The report of one request from its collections and events: a single request's, or a batch subject's
    (whose results the batch holds), in one format."""
    emails = [e for e in events if e["event"] == "email_sent"]
    review = next((e for e in reversed(events) if e["event"] in ("request_approved", "request_rejected")), None)
    rejected = review is not None and review["event"] == "request_rejected"
    vendor_emails = _vendor_emails(request)
    awaiting = any(v["status"] == layout.AWAITING_DIGEST for v in vendor_emails)
    return Report({
        "request_id": request.request_id,
        "policy": request.conf.policy,
        "identity_types": sorted(request.conf.identity),
        "dry_run": request.conf.dry_run,
        "after_dry_run": request.conf.after_dry_run,
        "status": (layout.FAILED if failure.get("final", True) else layout.RETRYING) if failure
                  else layout.REJECTED if rejected else layout.AWAITING_DIGEST if awaiting else layout.COMPLETE,
        "failed_checkpoint": failure,
        "review": review,
        "updated_at": datetime.now(UTC).isoformat(),
        "rows_found": sum(c["access"].get("rows", 0) for c in collections),
        "rows_masked": sum(c["erasure"].get("masked", 0) for c in collections),
        "rows_deleted": sum(c["erasure"].get("deleted", 0) for c in collections),
        "emails_sent": len(emails),
        **({"rows_planned": sum((c["erasure"].get("plan") or {}).get("rows") or 0 for c in collections),
            "emails_rendered": sum(e["event"] == "email_rendered" for e in events)} if request.conf.dry_run else {}),
        "vendor_emails": vendor_emails,
        "collections": collections,
        "events": events,
    })


def _vendor_emails(request: PrivacyRequest) -> list[dict[str, Any]]:
    """Per vendor email sent or handed to the vendor's digest: its status, and the Message-ID once sent."""
    store, result = request.store, []
    for dataset in request.config.email_datasets:
        sent = store.get(layout.email_sent(dataset))
        if sent:
            result.append({"dataset": dataset, "status": layout.EMAIL_SENT, "message_id": sent["message_id"],
                           "time": sent["time"], **({"digest": sent["digest"]} if "digest" in sent else {})})
        elif store.exists(layout.email_awaiting_digest(dataset)):
            queued = store.get(layout.email_awaiting_digest(dataset))
            result.append({"dataset": dataset, "status": layout.AWAITING_DIGEST, "since": queued["time"],
                           "schedule": queued["schedule"]})
    return result


CERTIFIED = (layout.COMPLETE, layout.AWAITING_DIGEST)  # a certificate describes a request that did its part


def write_report(request: PrivacyRequest, failure: dict[str, Any] | None = None,
                 now: datetime | None = None) -> Report:
    """Write report.json, then the certificate from the very text written (or remove a certificate that no
    longer describes the report: the request failed after all). A dry run erased nothing: no certificate."""
    store, now = request.store, now or datetime.now(UTC)
    report = build_report(request, failure)
    report_json = report.to_json()
    store.write_public(layout.REPORT, [report_json])
    status = report.body["status"]
    if request.conf.dry_run or status not in CERTIFIED:
        store.delete(layout.CERTIFICATE)
        return report
    if status == layout.COMPLETE:  # the first time the report says complete is when the request completed
        store.create(layout.COMPLETED, {"time": now.isoformat()})
    completed = (store.get(layout.COMPLETED) or {}).get("time")
    dates = request_due(store, request.policy)
    write_certificate(request.config, request.policy, store, report.body, report_json,
                      received=dates[0] if dates else None, due=dates[1] if dates else None,
                      completed=datetime.fromisoformat(completed) if completed else None, now=now)
    return report


def write_certificate(config: PrivacyConfig, policy: Policy, store: RequestStore, body: dict[str, Any],
                      report_json: str, *, received: datetime | None, due: datetime | None,
                      completed: datetime | None, now: datetime) -> None:
    """``certificate.html`` from the report as written (``report_json``, whose SHA-256 it carries): one write,
    nothing read. A report that is not complete (or awaiting a digest), or a dry run's, gets none."""
    if body.get("dry_run") or body.get("status") not in CERTIFIED:
        store.delete(layout.CERTIFICATE)
        return
    store.write_public(layout.CERTIFICATE, [render_certificate(
        organization=config.settings.organization, policy_name=policy.display_name, report=body,
        report_json=report_json, received=received, due=due, completed=completed, issued=now)])


def subject_due(policy: Policy, received: datetime, events: list[dict[str, Any]]) -> datetime:
    """A batch subject's due date from its report's events: every ``deadline_extended`` event holds the
    extension granted (the same entries ``statutory_clock.extensions`` reads from the ledger), so a batch
    computes it without reading a subject's ledger."""
    return due_date(policy, received, [e for e in events if e.get("event") == "deadline_extended"])


def rewrite_report(config: PrivacyConfig, store: RequestStore) -> Report | None:
    """Write again the report (and certificate) of a request whose run is over, after something outside the run
    changed it (a digest told its vendor, an extension, retention deleted its package). The request is read
    back from its records, without its identity values (a report holds only their types); a failed request
    stays failed. None when the request has no report yet (its run will write it)."""
    path = store.base / layout.REPORT
    record = store.get(layout.REQUEST)
    if record is None or not path.exists() or record.get("policy") not in config.policies:
        return None
    with path.open("r") as fh:
        previous = json.load(fh)
    conf = RequestConf.model_construct(
        request_id=record["request_id"], policy=record["policy"],
        identity=dict.fromkeys(record.get("identity_types") or previous.get("identity_types") or [], ""),
        dry_run=bool(record.get("dry_run")), after_dry_run=previous.get("after_dry_run"))
    request = PrivacyRequest(config, conf, record["request_id"], store, subject="")
    return write_report(request, failure=previous.get("failed_checkpoint"))
