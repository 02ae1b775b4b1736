"""The answer of a DROP run: one response CSV per list file (``Id,Status``, the download's file name), left in
storage for a manual upload or sent through the API; amend files for work items whose status changed since
it was reported (a record collected again after "not found", or a decision changed after a clear); the
suppression list brought up to date; the run report and its certificate.

Nothing is answered "deleted" before the batch engine has finished every matched consumer's erasure: if it
has not, this step fails, saying so, and a clear after the fix answers.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from itertools import groupby
from typing import Any

from ..errors import RequestError
from ..store import layout
from .files import parse_file_name, response_csv, response_name
from .outcomes import LABELS, NOT_FOUND
from .run import DropRun

log = logging.getLogger(__name__)
Upload = Callable[[dict[str, bytes], bool], dict[str, Any]]  # (files, amend) -> DROP's answer


def _batch_done(run: DropRun, subjects: int) -> None:
    if not subjects:
        return
    path = run.root / layout.BATCHES / run.batch_id / layout.REPORT
    report = json.loads(path.open("rb").read()) if path.exists() else {}
    incomplete = [s for s in report.get("subjects", []) if s.get("status") != layout.COMPLETE]
    if report.get("status") != layout.COMPLETE or incomplete or report.get("rejected"):
        raise RequestError(f"the erasure of the matched consumers (batch {run.batch_id}) is not complete: "
                           f"{len(incomplete)} subject(s) not complete, {len(report.get('rejected', []))} "
                           "rejected; nothing was answered. Fix the cause, finish the batch, then clear this task")


def respond(run: DropRun, upload: Upload | None) -> dict[str, Any]:
    store, drop = run.store, run.settings
    meta, matched = store.get(layout.DROP_DOWNLOAD), store.get(layout.DROP_MATCHED)
    if not meta or not matched:
        raise RequestError("drop_receive and drop_match have not run for this run")
    _batch_done(run, matched["subjects"])
    day = meta.get("download_date") or meta["received"][:10]
    stamp = date.fromisoformat(day).strftime("%Y%m%d")
    amends: dict[str, list[tuple[str, int]]] = {}
    written: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}

    def new_items() -> Iterator[dict[str, Any]]:
        """Every outcome once (streamed): counted, old ones that need an amend set aside, new ones yielded."""
        for outcome in store.read_rows(layout.DROP_OUTCOMES):
            per = counts.setdefault(outcome["list"], {})
            label = f"{outcome['status']} {LABELS[outcome['status']]}"
            per[label] = per.get(label, 0) + 1
            if outcome["new"]:
                yield outcome
            elif outcome["status"] != NOT_FOUND and outcome["reported"] != outcome["status"]:
                # Matched again on a later run: a record collected again (the regulation asks for the new
                # status in the next session). "Not found" after a deletion is what deleting means.
                name = f"{stamp}_{drop.broker_id}_{outcome['list']}_amend.csv"
                amends.setdefault(name, []).append((outcome["id"], outcome["status"]))

    # New work items come file by file (as received): one response file each, streamed.
    for file, group in groupby(new_items(), key=lambda o: o["file"]):
        name = response_name(parse_file_name(file))
        rows = 0

        def statuses(items: Iterator[dict[str, Any]] = group) -> Iterator[tuple[str, int]]:
            nonlocal rows
            for outcome in items:
                rows += 1
                yield outcome["id"], outcome["status"]

        store.write_public(f"{layout.DROP_RESPONSES}/{name}", response_csv(statuses()))
        written.append({"file": name, "rows": rows, "amend": False})
    for name, changed in sorted(amends.items()):
        store.write_public(f"{layout.DROP_RESPONSES}/{name}", response_csv(iter(changed)))
        written.append({"file": name, "rows": len(changed), "amend": True})
    sent = [_send(run, entry["file"], entry["amend"], upload) for entry in written] if upload else []
    kept = _update_suppression(run, {i: status for rows in amends.values() for i, status in rows})
    report = _report(run, meta, matched, counts, written, sent, kept)
    store.write_public(layout.DROP_RUN_REPORT, [json.dumps(report, indent=2) + "\n"])
    store.write_public(layout.DROP_OUTCOMES_CSV, _outcomes_csv(run))
    store.write_public(layout.DROP_CERTIFICATE, [_certificate(run, report)])
    uploaded = sum(1 for s in sent if s.get("sent"))
    store.add_event("drop_answered", files=len(written), uploads=uploaded)
    log.info("DROP answered: %d response file(s) (%d amend), %d uploaded; suppression list %d hash(es)",
             len(written), len(amends), uploaded, kept)
    return {"files": len(written), "amends": len(amends), "uploaded": uploaded, "suppression": kept,
            "counts": counts}


def _outcomes_csv(run: DropRun) -> Iterator[str]:
    """Every work item's outcome (id, list, status, reason), for the record: no identifier, no hash."""
    yield "Id,List,Status,Reason\r\n"
    for outcome in run.store.read_rows(layout.DROP_OUTCOMES):
        reason = (outcome["reason"] or "").replace('"', "'")
        yield f'{outcome["id"]},{outcome["list"]},{outcome["status"]},"{reason}"\r\n'


def _send(run: DropRun, name: str, amend: bool, upload: Upload) -> dict[str, Any]:
    """Upload one file once. A clear finds the ledger: nothing is sent again, unless statuses changed since;
    then only the changed rows go, as an amend (``<name>_amendN``)."""
    store = run.store
    with (store.base / layout.DROP_RESPONSES / name).open("rb") as fh:
        text = fh.read().decode()
    rows = [(line.split(",")[0], int(line.split(",")[1])) for line in text.splitlines()[1:] if line]
    digest = hashlib.sha256(text.encode()).hexdigest()
    entry = store.get(layout.drop_upload(name))
    if entry is None:
        answer = upload({name: text.encode()}, amend)
        store.put(layout.drop_upload(name), {"sha256": digest, "amend": amend, "answer": answer,
                                             "time": datetime.now(UTC).isoformat()})
        store.write_rows(layout.drop_upload(name) + ".rows", ({"id": i, "status": s} for i, s in rows))
        return {"file": name, "sent": True, "amend": amend, "answer": answer}
    if entry["sha256"] == digest:
        return {"file": name, "sent": False, "already": entry["time"]}
    before = {r["id"]: r["status"] for r in store.read_rows(layout.drop_upload(name) + ".rows")}
    changed = [(i, s) for i, s in rows if before.get(i) != s]
    number = len(store.list(layout.LEDGER)) + 1
    amend_name = name.removesuffix(".csv") + f"_amend{number}"[:10] + ".csv"
    if "_" in name.removesuffix(".csv").split("_", 3)[-1]:  # the name already has a suffix: replace it
        amend_name = "_".join(name.removesuffix(".csv").split("_")[:3]) + f"_amend{number}.csv"
    answer = upload({amend_name: "".join(response_csv(iter(changed))).encode()}, True)
    store.put(layout.drop_upload(name), {**entry, "sha256": digest, "amended": amend_name, "answer": answer})
    store.write_rows(layout.drop_upload(name) + ".rows", ({"id": i, "status": s} for i, s in rows))
    return {"file": amend_name, "sent": True, "amend": True, "answer": answer}


def _update_suppression(run: DropRun, amended: dict[str, int]) -> int:
    """Every hash received stays (with the status last reported) until DROP lists it as removed. Written to
    the run's store first, then copied: a failure half-way is repaired by a clear."""
    store = run.store
    removed = {r["id"] for r in store.read_rows(layout.DROP_REMOVED)}
    staged = "drop/suppression_next"
    if not store.exists(staged + ".done"):
        received = store.get(layout.REQUEST)["received"][:10]

        def merged() -> Any:
            new = set()
            for outcome in store.read_rows(layout.DROP_OUTCOMES):  # removed ones are not among them
                if outcome["new"]:
                    new.add(outcome["id"])
                    yield {"id": outcome["id"], "list": outcome["list"], "hash": outcome["hash"],
                           "received": received, "reported": outcome["status"]}
            for item in run.suppression.read_rows(layout.DROP_SUPPRESSION_ROWS):
                if item["id"] not in removed and item["id"] not in new:
                    yield {**item, "reported": amended.get(item["id"], item.get("reported"))}

        store.write_rows(staged, merged())
        store.put(staged + ".done", {"time": datetime.now(UTC).isoformat()})
    return run.suppression.write_rows(layout.DROP_SUPPRESSION_ROWS, store.read_rows(staged))


def _report(run: DropRun, meta: dict[str, Any], matched: dict[str, Any], counts: dict[str, dict[str, int]],
            written: list[dict[str, Any]], sent: list[dict[str, Any]], kept: int) -> dict[str, Any]:
    total = sum(n for per in counts.values() for n in per.values())
    due = date.fromisoformat(meta["due"])
    return {
        "run_id": run.run_id, "batch_id": run.batch_id if matched["subjects"] else None,
        "broker_id": run.settings.broker_id, "download_date": meta.get("download_date"),
        "received": meta["received"], "due": meta["due"], "days_left": (due - datetime.now(UTC).date()).days,
        "answered_at": datetime.now(UTC).isoformat(),
        "work_items": total, "new_work_items": sum(meta["rows"].values()),
        "rematched_from_suppression_list": total - sum(meta["rows"].values()),
        "removed_identifiers": meta["removed"], "rejected_rows": run.store.get(layout.DROP_REJECTED) or [],
        "counts": counts, "consumers_erased": matched["subjects"], "rows_opted_out": matched["opted_out_rows"],
        "exemptions": sorted({r.reason for r in run.settings.exemptions}),
        "response_files": written, "uploads": sent, "suppression_list_size": kept,
        "outcomes_file": layout.DROP_OUTCOMES_CSV,
    }


def _certificate(run: DropRun, report: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(lst)}</td><td>{html.escape(label)}</td><td>{n}</td></tr>"
                   for lst, per in sorted(report["counts"].items()) for label, n in sorted(per.items()))
    org = html.escape(run.config.settings.organization)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>DROP certificate</title></head><body>"
            f"<h1>DROP processing certificate</h1><p>{org} (data broker id {html.escape(report['broker_id'])}) "
            f"processed the DROP download of {report['download_date'] or 'none (no new data)'} on "
            f"{report['answered_at'][:10]}, due {report['due']}: {report['work_items']} work item(s), of which "
            f"{report['rematched_from_suppression_list']} re-matched from the suppression list; "
            f"{report['consumers_erased']} consumer(s) erased through batch {html.escape(str(report['batch_id']))}"
            f"; {report['removed_identifiers']} identifier(s) removed by DROP.</p><table border='1'><tr><th>List"
            f"</th><th>Status</th><th>Work items</th></tr>{rows}</table><p>Response files: "
            f"{html.escape(', '.join(f['file'] for f in report['response_files']) or 'none')}.</p></body></html>\n")
