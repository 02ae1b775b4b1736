"""One DROP run, as the privacy_drop DAG's tasks see it: receive the download, match and decide, then (after
the batch engine has erased the matched consumers) answer; see respond.py.

A run's state lives in its own encrypted store, ``{storage}/_drop/{run}/``; the suppression list (every hash
received, never an identity) in ``{storage}/_drop/suppression/``. Each step records that it is done, so a
clear repeats nothing that changed the broker's data or reached DROP.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import column, table, tuple_, update
from sqlalchemy.engine import Engine

from ..batch.subjects import Batch, open_batch
from ..errors import ForeignRequestError, RequestError
from ..model.settings import PrivacyConfig
from ..store import layout
from ..store.store import RequestStore, StoragePath
from .files import open_download
from .matching import find_matches, plan_targets
from .outcomes import DELETED, LABELS, OPTED_OUT, decide, group_matches, subjects_for

log = logging.getLogger(__name__)


def run_key(run_id: str) -> str:
    """A folder name for an Airflow run id (``scheduled__2026-12-01T00:00:00+00:00``)."""
    return "run-" + re.sub(r"[^A-Za-z0-9._-]", "-", run_id)[:120]


@dataclass
class DropRun:
    config: PrivacyConfig
    run_id: str
    root: StoragePath
    key: str

    @property
    def store(self) -> RequestStore:
        return RequestStore(self.root / layout.DROP, run_key(self.run_id), self.key)

    @property
    def suppression(self) -> RequestStore:
        return RequestStore(self.root / layout.DROP, layout.DROP_SUPPRESSION, self.key)

    @property
    def batch_id(self) -> str:
        return "drop-" + run_key(self.run_id).removeprefix("run-")

    @property
    def settings(self) -> Any:
        drop = self.config.settings.drop
        if drop is None:
            raise RequestError("privacy.yml has no 'drop:' section")
        return drop


def receive(run: DropRun, download: bytes | None, received: str) -> dict[str, Any]:
    """Claim the run, check the download whole (a wrong file name or header fails here, before anything
    changes) and keep its work items, removed identifiers and rejected rows. ``download`` None: DROP had no
    new data; the run still re-matches the suppression list."""
    store = run.store
    if not store.create(layout.REQUEST, {"run_id": run.run_id, "received": received, "drop": True}):
        owner = store.get(layout.REQUEST)
        if owner["run_id"] != run.run_id:
            raise ForeignRequestError(f"DROP run folder belongs to run '{owner['run_id']}'")
        done = store.get(layout.DROP_DOWNLOAD)
        if done:
            return _counts(done)
    received_day = date.fromisoformat(received[:10])
    meta: dict[str, Any] = {"received": received, "files": [], "rows": {}, "removed": 0, "rejected": 0}
    if download is not None:
        checked = open_download(download, run.settings.broker_id)
        meta["download_date"] = checked.download_date.isoformat()
        meta["broker_id"] = checked.broker_id

        def items() -> Iterator[dict[str, Any]]:
            for list_file in checked.files:
                if list_file.removed:
                    continue
                count = 0
                for item in checked.items(list_file):
                    count += 1
                    yield {"id": item["id"], "list": list_file.list_type, "hash": item["hash"],
                           "file": list_file.name}
                meta["rows"][list_file.name] = count

        store.write_rows(layout.DROP_ITEMS, items())
        removed_files = [f for f in checked.files if f.removed]
        meta["removed"] = store.write_rows(layout.DROP_REMOVED, (r for f in removed_files for r in checked.items(f)))
        rejected = [r.as_dict() for r in checked.rejected]
        store.put(layout.DROP_REJECTED, rejected)
        meta["rejected"] = len(rejected)
        meta["files"] = [{"name": f.name, "list": f.list_type, "suffix": f.suffix} for f in checked.files]
        start = checked.download_date
    else:
        start = received_day
    meta["due"] = (start + timedelta(days=run.settings.due_days)).isoformat()
    store.put(layout.DROP_DOWNLOAD, meta)
    store.add_event("drop_received", files=len(meta["files"]), rows=sum(meta["rows"].values()),
                    removed=meta["removed"], rejected=meta["rejected"])
    log.info("DROP download: %d file(s), %d work item(s), %d removed, %d malformed row(s) rejected",
             len(meta["files"]), sum(meta["rows"].values()), meta["removed"], meta["rejected"])
    return _counts(meta)


def _counts(meta: dict[str, Any]) -> dict[str, Any]:
    return {"work_items": sum(meta["rows"].values()), "removed": meta["removed"], "rejected": meta["rejected"],
            "due": meta["due"]}


def work_items(run: DropRun) -> Iterator[dict[str, Any]]:
    """This run's work items: the download's (new) and the suppression list's, less the removed ones."""
    removed = {r["id"] for r in run.store.read_rows(layout.DROP_REMOVED)}
    new_ids = set()
    for item in run.store.read_rows(layout.DROP_ITEMS):
        if item["id"] not in removed:
            new_ids.add(item["id"])
            yield {**item, "new": True}
    for item in run.suppression.read_rows(layout.DROP_SUPPRESSION_ROWS):
        if item["id"] not in removed and item["id"] not in new_ids:
            yield {"id": item["id"], "list": item["list"], "hash": item["hash"], "new": False,
                   "reported": item.get("reported")}


def match(run: DropRun, engine_for: Callable[[str], Engine]) -> dict[str, Any]:
    """Match every work item set-based, decide its status, opt out the shared identifiers and write the
    consumers to erase. Decided once per run: a clear returns the recorded decision."""
    store = run.store
    done = store.get(layout.DROP_MATCHED)
    if done:
        return done
    targets = plan_targets(run.config)
    wanted: dict[str, set[str]] = {}
    for item in work_items(run):
        wanted.setdefault(item["list"], set()).add(item["hash"])
    groups = group_matches(find_matches(targets, wanted, engine_for))
    del wanted
    by_address = {str(t.address): t for t in targets}
    identities: dict[str, dict[str, str]] = {}
    opt_out_rows: dict[str, set[str]] = {}
    counts: dict[str, dict[str, int]] = {}

    def outcomes() -> Iterator[dict[str, Any]]:
        for item in work_items(run):
            decision = decide(groups.get((item["list"], item["hash"]), []), by_address)
            if decision.identity:
                identities[item["id"]] = decision.identity
            for address, key in decision.opt_out or []:
                opt_out_rows.setdefault(address, set()).add(key)
            per_list = counts.setdefault(item["list"], {})
            per_list[LABELS[decision.status]] = per_list.get(LABELS[decision.status], 0) + 1
            yield {"id": item["id"], "list": item["list"], "hash": item["hash"], "status": decision.status,
                   "reason": decision.reason, "new": item["new"], "file": item.get("file"),
                   "reported": item.get("reported")}

    store.write_rows(layout.DROP_OUTCOMES, outcomes())
    opted = _opt_out(run, opt_out_rows, engine_for)
    subject_of: dict[str, str] = {}
    day = date.fromisoformat(store.get(layout.REQUEST)["received"][:10]).strftime("%Y%m%d")
    subjects = []
    for request_id, identity, items in subjects_for(store.read_rows(layout.DROP_OUTCOMES), identities, day):
        subjects.append({"request_id": request_id, "identity": identity})
        subject_of.update(dict.fromkeys(items, request_id))
    store.write_rows(layout.DROP_SUBJECTS, subjects)
    store.put("drop/subject_of.json", subject_of)
    result = {"counts": counts, "subjects": len(subjects), "opted_out_rows": opted,
              "deleted": sum(c.get(LABELS[DELETED], 0) for c in counts.values()),
              "opted_out": sum(c.get(LABELS[OPTED_OUT], 0) for c in counts.values())}
    store.put(layout.DROP_MATCHED, result)
    store.add_event("drop_matched", **result)
    log.info("DROP matching: %s; %d consumer(s) to erase", counts, len(subjects))
    return result


def _opt_out(run: DropRun, rows: dict[str, set[str]], engine_for: Callable[[str], Engine]) -> int:
    """Write the configured opt-out values on every row of a shared identifier, by primary key, once."""
    if run.store.exists(layout.DROP_OPTED_OUT):
        return run.store.get(layout.DROP_OPTED_OUT)["rows"]
    total = 0
    for address, keys in sorted(rows.items()):
        values = run.settings.opt_out.get(address)
        if not values:
            continue
        collection = next(c for a, c in run.config.graph.collections.items() if str(a) == address)
        key_columns = [f.column for f in collection.primary_keys]
        tbl = table(collection.address.collection, *(column(c) for c in {*key_columns, *values}))
        decoded = [json.loads(k) for k in sorted(keys)]
        with engine_for(collection.address.dataset).begin() as conn:
            for start in range(0, len(decoded), 1000):
                chunk = decoded[start:start + 1000]
                if len(key_columns) == 1:
                    where = tbl.c[key_columns[0]].in_([k[0] for k in chunk])
                else:
                    where = tuple_(*(tbl.c[c] for c in key_columns)).in_([tuple(k) for k in chunk])
                total += conn.execute(update(tbl).where(where).values(values)).rowcount
    run.store.put(layout.DROP_OPTED_OUT, {"rows": total})
    return total


def drop_batch(run: DropRun) -> Batch:
    """The batch that erases this run's matched consumers (``batches/drop-<run>/``), policy ``drop.policy``;
    its subjects come from drop_match, not from a trigger conf."""
    conf = {"batch_id": run.batch_id, "policy": run.settings.policy, "subjects": []}
    return open_batch(run.config, conf, run.run_id, run.root, run.key)


def drop_subjects(run: DropRun) -> Iterator[dict[str, Any]]:
    return run.store.read_rows(layout.DROP_SUBJECTS)


def has_subjects(run: DropRun) -> bool:
    matched = run.store.get(layout.DROP_MATCHED) or {}
    return bool(matched.get("subjects"))
