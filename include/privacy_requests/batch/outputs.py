"""What a batch leaves behind: each subject's ``access_package.json`` and ``report.json`` in exactly a single
request's format (access_package.py, report.py), the vendors' emails (one per vendor dataset, exactly once,
vendor_email.send_once), and the batch's own ``{storage}/batches/{batch_id}/report.json``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from ..connectors.vendor import locatable
from ..deliverables.access_package import write_access_package
from ..errors import ConfigError, DataSourceError, RequestError, StepSkipped, TransientError
from ..outbound.email.render import DigestEntry, render_digest_email
from ..outbound.vendor_email import Composed, Send, send_once
from ..request.report import assemble_report, collection_entry, subject_due, write_certificate
from ..request.request import release_subject
from ..steps.collection_steps import erasure_began
from ..store import layout
from .subjects import Batch, Subject

log = logging.getLogger(__name__)

PACKAGE_GROUP = 1000  # subjects whose rows are gathered per pass over the batch's rows (bounds memory)


class _SubjectRows:
    """One subject's rows by store key, shaped like the store a package reads its rows from."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        self._rows = rows

    def read_rows(self, name: str) -> Iterator[dict[str, Any]]:
        return iter(self._rows.get(name, []))


def write_access_packages(batch: Batch) -> dict[str, int]:
    """Every subject's access package, as a single request's. Subjects go in groups of PACKAGE_GROUP: one
    pass over the batch's rows per group. Packages written before erasure began are kept."""
    policy = batch.policy
    if not policy.access_rules:
        raise StepSkipped(f"policy '{policy.key}' has no access rules: no access package")
    keep = erasure_began(batch.store)
    config = batch.config
    addresses = [a for a in config.plan.order if policy.access_fields(config.graph.collections[a])]
    written = rows_total = 0
    group: list[Subject] = []
    for subject in batch.subjects():
        group.append(subject)
        if len(group) == PACKAGE_GROUP:
            w, r = _packages(batch, group, addresses, keep)
            written, rows_total, group = written + w, rows_total + r, []
    if group:
        w, r = _packages(batch, group, addresses, keep)
        written, rows_total = written + w, rows_total + r
    log.info("Access packages written for %d subject(s), %d row(s) in all", written, rows_total)
    return {"packages": written, "rows": rows_total}


def _packages(batch: Batch, group: list[Subject], addresses: list[Any], keep: bool) -> tuple[int, int]:
    wanted = {s.position: s for s in group}
    rows: dict[int, dict[str, list[dict[str, Any]]]] = {p: {} for p in wanted}
    for address in addresses:
        name = layout.rows(address)
        for item in batch.store.read_rows(name):
            for position in item["subjects"]:
                if position in wanted:
                    rows[position].setdefault(name, []).append(item["row"])
    written = total = 0
    for position, subject in wanted.items():
        request = batch.subject_request(subject)
        if keep and all(request.store.exists(layout.PACKAGE_FILES[f]) for f in batch.policy.access_package.formats):
            continue
        _, counts = write_access_package(request, _SubjectRows(rows[position]),  # type: ignore[misc]
                                         batch_id=batch.batch_id)
        written += 1
        total += sum(counts.values())
    return written, total


def send_batch_email(batch: Batch, dataset: str, *, sender: Callable[[], str], send: Send,
                     try_number: int) -> dict[str, Any]:
    """One email to the vendor for the whole batch, listing per subject what its single email would list
    (subjects the vendor cannot locate, or with nothing to erase, are left out); exactly once."""
    config = batch.config
    if not batch.policy.erasure_rules:
        raise StepSkipped(f"policy '{batch.policy.key}' has no erasure rules: no vendor email")
    if config.mapping(dataset).access == "read":
        raise StepSkipped(f"dataset '{dataset}' is read-only (access: read): no email")
    target = config.mapping(dataset).email
    assert target is not None

    def compose() -> Composed:
        by_subject: dict[int, list[dict[str, Any]]] = {}
        for address in config.plan.order:
            if address.dataset == dataset:
                for item in batch.store.read_rows(layout.subject_instructions(address)):
                    by_subject.setdefault(item["s"], []).append(item["instruction"])
        entries, listed = [], []
        for subject in batch.subjects():
            instructions = by_subject.get(subject.position, [])
            found = locatable(instructions)
            if any(i["erase"] for i in instructions if i["collection"] in found):
                entries.append(DigestEntry(subject.request_id, instructions))
                listed.append(subject.position)
        if not entries:
            raise StepSkipped(f"no subject has anything in '{dataset}' to erase that the vendor can locate with "
                              "what we hold: no email")
        batch.store.put(layout.email_subjects(dataset), listed)
        rendered = render_digest_email(organization=config.settings.organization, reference=batch.batch_id,
                                       vendor_name=target.vendor_name, entries=entries)
        return Composed(rendered, target.to, {"subjects": len(entries)})

    return send_once(batch.store, dataset, compose, sender=sender, send=send, try_number=try_number)


def _subject_reports(batch: Batch, failure: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    """Write every accepted subject's report.json, and its certificate.html from the same text (as
    report.write_report does for a single request), from the batch's results; yields each one's summary.

    Per subject: its report written (compact JSON: Python's encoder in C, where an indent takes its pure-Python
    one, five times slower), its events folder looked at (a batch keeps a subject's validation in its own
    subjects list, so the folder holds only what happened to the request outside the batch), and its claim
    released. A batch writes no intermediate data into a subject's folder, so there is none to delete."""
    config, store = batch.config, batch.store
    results = {}
    for address in config.plan.order:
        results[address] = (store.get(layout.result(layout.ACCESS, address)) or {},
                            store.get(layout.result(layout.ERASURE, address)) or {},
                            store.get(layout.erasure_ledger(address)) or {})
    # The certificate's dates, once per batch: every subject was received with the batch, and completed when the
    # batch first completed (a create-only mark in the batch's ledger, so a cleared finalize does not move it).
    now = datetime.now(UTC)
    received = datetime.fromisoformat(store.get(layout.REQUEST)["received"])
    if failure is None:
        store.create(layout.COMPLETED, {"time": now.isoformat()})
    completed_at = (store.get(layout.COMPLETED) or {}).get("time") if failure is None else None
    completed = datetime.fromisoformat(completed_at) if completed_at else None
    emails = []
    for dataset in config.email_datasets:
        sent = store.get(layout.email_sent(dataset))
        if sent:
            emails.append((sent, set(store.get(layout.email_subjects(dataset)) or [])))
    for subject in batch.subjects():
        key = str(subject.position)
        collections = []
        for address, (access, erasure, ledger) in results.items():
            rows = access.get("per_subject", {}).get(key, 0)
            mine_access = {k: v for k, v in access.items() if k not in ("per_subject", "subjects_with_rows",
                                                                        "unattributed")}
            if access:
                mine_access["rows"] = rows
            mine_erasure = {k: v for k, v in erasure.items() if k != "subjects"}
            mine_ledger = {**ledger, "masked": rows} if ledger else {}
            collections.append(collection_entry(config.mapping(address.dataset).kind, address, mine_access,
                                                mine_erasure, mine_ledger))
        request = batch.subject_request(subject)
        validated = subject.validated_event(batch.batch_id, batch.conf.policy)
        events = ([validated] if validated else []) + request.store.events() + [
            {"event": "email_sent", "time": sent["time"], "dataset": sent["dataset"], "recipients": sent["recipients"],
             "refused": sent["refused"], "message_id": sent["message_id"], "try_number": sent["try_number"],
             "batch_id": batch.batch_id}
            for sent, listed in emails if subject.position in listed]
        report = assemble_report(request, collections, sorted(events, key=lambda e: e["time"]), failure)
        report_json = json.dumps(report.body) + "\n"
        request.store.write_public(layout.REPORT, [report_json])
        # Its certificate from the very text written: one more write, nothing read (a failure removes it).
        write_certificate(config, batch.policy, request.store, report.body, report_json, received=received,
                          due=subject_due(batch.policy, received, report.body["events"]),
                          completed=completed if report.body["status"] == layout.COMPLETE else None, now=now)
        yield {"request_id": subject.request_id, "status": report.body["status"],
               "rows_found": report.body["rows_found"], "rows_masked": report.body["rows_masked"],
               "rows_deleted": report.body["rows_deleted"],
               "emails_sent": report.body["emails_sent"]}
        if failure is None:
            release_subject(request)


def batch_report(batch: Batch, subjects: list[dict[str, Any]], failure: dict[str, Any] | None) -> dict[str, Any]:
    """The batch's own report: counts per collection (statements, rows, masked) and per subject."""
    config, store = batch.config, batch.store
    collections = []
    for address in config.plan.order:
        access = store.get(layout.result(layout.ACCESS, address)) or {}
        erasure = store.get(layout.result(layout.ERASURE, address)) or {}
        entry = collection_entry(config.mapping(address.dataset).kind, address,
                                 {k: v for k, v in access.items() if k != "per_subject"}, erasure,
                                 store.get(layout.erasure_ledger(address)) or {})
        entry["access"]["subjects_with_rows"] = access.get("subjects_with_rows", 0)
        collections.append(entry)
    rejected = list(store.read_rows(layout.BATCH_REJECTED))
    emails = [store.get(layout.email_sent(d)) for d in config.email_datasets if store.exists(layout.email_sent(d))]
    status = (layout.FAILED if failure.get("final", True) else layout.RETRYING) if failure else layout.COMPLETE
    return {
        "batch_id": batch.batch_id,
        "policy": batch.conf.policy,
        "status": status,
        "failed_checkpoint": failure,
        "updated_at": datetime.now(UTC).isoformat(),
        "subjects_accepted": len(subjects),
        "subjects_rejected": len(rejected),
        "rows_found": sum(c["access"].get("rows", 0) for c in collections),
        "rows_masked": sum(c["erasure"].get("masked", 0) for c in collections),
        "rows_deleted": sum(c["erasure"].get("deleted", 0) for c in collections),
        "emails_sent": len(emails),
        "collections": collections,
        "emails": [{k: e[k] for k in ("dataset", "message_id", "time", "subjects") if k in e} for e in emails],
        "subjects": subjects,
        "rejected": rejected,
    }


def finish_batch(batch: Batch) -> dict[str, Any]:
    """Every subject's report, then the batch's; intermediate data deleted and subjects freed; the ledger
    and the deliverables stay. Returns the batch report's counts."""
    subjects = list(_subject_reports(batch, None))
    report = batch_report(batch, subjects, None)
    batch.store.write_public(layout.REPORT, [json.dumps(report) + "\n"])  # compact: see _subject_reports
    removed = batch.store.delete_intermediate()
    log.info("Batch %s finished: %d subject report(s); %d intermediate object(s) deleted", batch.batch_id,
             len(subjects), removed)
    return {k: report[k] for k in ("subjects_accepted", "subjects_rejected", "rows_found", "rows_masked",
                                   "rows_deleted", "emails_sent")}


def record_batch_failure(batch: Batch, checkpoint: str, try_number: int, exc: Exception, *, final: bool) -> None:
    """As for a single request (lifecycle.record_failure): an event, and the reports (the batch's and every
    accepted subject's) saying it failed here, or that it is retrying (the subjects stay held)."""
    known = isinstance(exc, (RequestError, ConfigError, DataSourceError, TransientError))
    failure = batch.store.add_event("checkpoint_failed", checkpoint=checkpoint, try_number=try_number,
                                    error=type(exc).__name__, message=str(exc) if known else "see the task log",
                                    final=final)
    subjects = list(_subject_reports(batch, failure))
    batch.store.write_public(layout.REPORT, [json.dumps(batch_report(batch, subjects, failure)) + "\n"])
