"""The per-collection steps of a request: find the subject's records (access), then erase them (erasure).

They call the dataset's connector (connectors/base.py) without asking what kind it is; what is the same for
every kind lives here: the values that reach a collection, rows and outgoing values to the store, rows kept
once erasure began, erasure done at most once (the ledger), read-only datasets, the erasable fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..connectors.base import ConnectorFor, ErasureWork
from ..errors import RequestError, StepSkipped
from ..model.graph import CollectionAddress
from ..model.values import distinct, values_at
from ..request.request import PrivacyRequest
from ..store import layout
from ..store.store import RequestStore
from .erasure_plan import PLANNED, plan_erasure

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a step did, for the report, XCom and the log: counts and reasons, nothing personal."""

    status: str
    rows: int = 0
    masked: int = 0
    seconds: float = 0.0
    statements: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {**{k: v for k, v in data.items() if k != "detail"}, **self.detail}


def erasure_began(store: RequestStore) -> bool:
    """Whether any collection of this request has been erased (its ledger entry exists)."""
    return any(layout.is_erasure_ledger(name) for name in store.list(layout.LEDGER))


def access_collection(request: PrivacyRequest, address: CollectionAddress, connector_for: ConnectorFor) -> Outcome:
    """Look the subject up with the values arriving on the collection's edges; rows and outgoing values go to
    the store. Once erasure has begun the rows found before it are kept: a new lookup would find masked data
    and shrink what is left to erase."""
    store = request.store
    if erasure_began(store) and store.exists(layout.rows(address)):
        previous = store.get(layout.result(layout.ACCESS, address)) or {}
        log.info("%s: erasure has begun for this request, so the rows found before it are kept", address)
        return Outcome("kept", rows=previous.get("rows", 0))
    inputs = request.incoming_values(address)
    started = time.monotonic()
    connector = connector_for(address.dataset)
    found = connector.retrieve(request, request.config.graph.collections[address], inputs)
    count = record_found(request, address, found.rows)
    status = found.status or ("complete" if inputs else "no_input")
    outcome = Outcome(status, rows=count, seconds=round(time.monotonic() - started, 3),
                      statements=connector.statements, detail=found.detail)
    log.info("%s: %s, %d rows in %.2f s (%d statement(s), %d input field(s))", address, status, count,
             outcome.seconds, outcome.statements, len(inputs))
    return outcome


def record_found(request: PrivacyRequest, address: CollectionAddress, rows: Iterable[dict[str, Any]]) -> int:
    """Rows to the store, and the distinct values of every field that feeds another collection (even none)."""
    collected: dict[str, list[Any]] = {f: [] for f in sorted(request.config.plan.out_fields(address))}
    count = request.store.write_rows(layout.rows(address), _collect(rows, collected))
    for path, found in collected.items():
        request.store.put(layout.values(address, path), distinct(found))
    return count


def _collect(rows: Iterable[dict[str, Any]], collected: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Pass rows through, keeping the values of fields that feed other collections."""
    for row in rows:
        for path, bucket in collected.items():
            bucket.extend(values_at(row, path))
        yield row


def _found_rows(request: PrivacyRequest, address: CollectionAddress) -> Iterator[dict[str, Any]]:
    """The rows access found, for the connectors that erase them."""
    if not request.store.exists(layout.rows(address)):
        raise RequestError(f"the rows found in {address} are gone (the request was finished): clear "
                           f"access.{address.task_suffix} with its downstream tasks instead")
    return request.store.read_rows(layout.rows(address))


def erase_collection(request: PrivacyRequest, address: CollectionAddress, connector_for: ConnectorFor,
                     try_number: int, rows: Callable[[], Iterator[dict[str, Any]]] | None = None) -> Outcome:
    """Erase the rows found during access, at most once per request: a connector that changed data has its
    count recorded in the ledger before the step reports success, and a later try reports that record.
    ``rows`` reads the found rows when they are not stored as a single request's (a batch's carry provenance)."""
    if not request.policy.erasure_rules:
        raise StepSkipped(f"policy '{request.policy.key}' has no erasure rules")
    store = request.store
    done = store.get(layout.erasure_ledger(address))
    if done:
        log.info("%s was already erased at try %s (%s rows): not erasing again", address, done["try_number"],
                 done["masked"])
        return Outcome("complete", masked=done["masked"], detail={"masked_at_try": done["try_number"]})
    if request.config.mapping(address.dataset).access == "read":
        reason = f"dataset '{address.dataset}' is read-only (access: read): nothing erased"
        log.warning("%s: %s", address, reason)
        return Outcome("read_only", detail={"reason": reason})
    collection = request.config.graph.collections[address]
    work = ErasureWork(request, collection, request.policy.erasure_fields(collection),
                       rows or (lambda: _found_rows(request, address)))
    started = time.monotonic()
    connector = connector_for(address.dataset)
    if request.conf.dry_run:  # the plan instead of the erasure: nothing changed, no ledger entry
        plan = plan_erasure(work, request.config.mapping(address.dataset).kind, connector)
        log.info("%s: dry run, %s row(s) would be masked", address, plan["rows"])
        return Outcome(PLANNED, seconds=round(time.monotonic() - started, 3), detail={"plan": plan})
    erased = connector.erase(work)
    outcome = Outcome(erased.status, masked=erased.masked or 0, seconds=round(time.monotonic() - started, 3),
                      statements=connector.statements, detail=erased.detail)
    if erased.masked is not None:
        outcome.detail["masked_at_try"] = try_number
        store.put(layout.erasure_ledger(address), {"masked": erased.masked, "try_number": try_number,
                                                   "time": datetime.now(UTC).isoformat(), **erased.detail})
        if erased.event:
            store.add_event(erased.event["event"], collection=str(address), try_number=try_number,
                            **{k: v for k, v in erased.event.items() if k != "event"})
        log.info("%s: erased %d row(s) in %.2f s (%d statement(s))", address, erased.masked, outcome.seconds,
                 outcome.statements)
    return outcome
