"""The per-collection steps of a request, framework-free: find the subject's rows (access), then mask
them or prepare a vendor's instruction (erasure). Operators and the benchmark both run these."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .connectors.email import build_instruction
from .connectors.sql import SqlConnector
from .errors import RequestError
from .graph import Collection, CollectionAddress
from .masking import FieldMask, Masker
from .policy import MaskingStrategySpec
from .request import PrivacyRequest, rows_name, values_name
from .store import RequestStore
from .values import distinct, values_at

log = logging.getLogger(__name__)
ConnectorFor = Callable[[str], SqlConnector]


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


def ledger_name(address: CollectionAddress) -> str:
    return f"ledger/erasure.{address.task_suffix}.json"


def erasure_began(store: RequestStore) -> bool:
    """Whether any collection of this request has been masked (its ledger entry exists)."""
    return any(name.startswith("ledger/erasure.") for name in store.list("ledger"))


def instruction_name(address: CollectionAddress) -> str:
    return f"instructions/{address.dataset}/{address.collection}.json"


def access_collection(request: PrivacyRequest, address: CollectionAddress, connector_for: ConnectorFor) -> Outcome:
    """One query over the values arriving on the collection's edges; rows and outgoing values go to the store."""
    config = request.config
    early, inputs = access_inputs(request, address)
    if early:
        return early
    started = time.monotonic()
    connector = connector_for(config.mapping(address.dataset).conn_id or "")
    rows = connector.retrieve(config.graph.collections[address], inputs)
    count = record_found(request, address, rows)
    outcome = Outcome("complete", rows=count, seconds=round(time.monotonic() - started, 3),
                      statements=connector.statements)
    log.info("%s: %d rows in %.2f s (%d statement(s), %d input field(s))", address, count, outcome.seconds,
             outcome.statements, len(inputs))
    return outcome


def access_inputs(request: PrivacyRequest,
                  address: CollectionAddress) -> tuple[Outcome | None, dict[str, list[Any]]]:
    """The values to look the subject up with, or the outcome when no lookup is needed: rows kept once
    erasure began, a vendor collection, or no value arrived on the collection's edges."""
    config, store = request.config, request.store
    if erasure_began(store) and store.exists(rows_name(address)):
        # Erasure has begun: a new lookup would find masked data and shrink what is left to erase.
        previous = store.get(f"results/access.{address.task_suffix}.json") or {}
        log.info("%s: erasure has begun for this request, so the rows found before it are kept", address)
        return Outcome("kept", rows=previous.get("rows", 0)), {}
    if config.is_email(address):
        record_found(request, address, [])
        log.info("%s is a vendor (email) collection: nothing to query, 0 rows", address)
        return Outcome("vendor"), {}
    inputs = request.incoming_values(address)
    if not inputs:
        record_found(request, address, [])
        log.info("%s: no values arrived on its edges, so no lookup; 0 rows", address)
        return Outcome("no_input"), {}
    return None, inputs


def record_found(request: PrivacyRequest, address: CollectionAddress, rows: Iterable[dict[str, Any]]) -> int:
    """Rows to the store, and the distinct values of every field that feeds another collection (even none)."""
    collected: dict[str, list[Any]] = {f: [] for f in sorted(request.config.plan.out_fields(address))}
    count = request.store.write_rows(rows_name(address), _collect(rows, collected))
    for path, values in collected.items():
        request.store.put(values_name(address, path), distinct(values))
    return count


def _collect(rows: Iterable[dict[str, Any]], collected: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Pass rows through, keeping the values of fields that feed other collections."""
    for row in rows:
        for path, bucket in collected.items():
            bucket.extend(values_at(row, path))
        yield row


def erase_collection(request: PrivacyRequest, address: CollectionAddress, connector_for: ConnectorFor,
                     try_number: int) -> Outcome:
    """Mask the rows found during access (SQL) or record the vendor's instruction (email), at most once."""
    config, store = request.config, request.store
    early = erasure_done_or_barred(request, address)
    if early:
        return early
    if config.is_email(address):
        return _prepare_instruction(request, address)
    collection = config.graph.collections[address]
    if not collection.primary_keys:
        reason = "no primary key is defined for this collection: nothing erased"
        log.warning("%s: %s", address, reason)
        return Outcome("no_primary_key", detail={"reason": reason})
    masks = field_masks(request, collection)
    if not masks:
        log.info("%s: no field matches the erasure targets", address)
        return Outcome("nothing_to_erase")
    if not store.exists(rows_name(address)):
        raise RequestError(f"the rows found in {address} are gone (the request was finished): clear "
                           f"access.{address.task_suffix} with its downstream tasks instead")
    started = time.monotonic()
    connector = connector_for(config.mapping(address.dataset).conn_id or "")
    masked = connector.mask(collection, store.read_rows(rows_name(address)), masks)
    outcome = Outcome("complete", masked=masked, seconds=round(time.monotonic() - started, 3),
                      statements=connector.statements, detail={"fields": sorted(masks), "masked_at_try": try_number})
    store.put(ledger_name(address), {"masked": masked, "fields": sorted(masks), "try_number": try_number,
                                     "time": datetime.now(UTC).isoformat()})
    store.add_event("collection_masked", collection=str(address), rows=masked, fields=sorted(masks),
                    try_number=try_number)
    log.info("%s: masked %s in %d row(s) in %.2f s (%d UPDATE statement(s))", address, ", ".join(sorted(masks)),
             masked, outcome.seconds, outcome.statements)
    return outcome


def erasure_done_or_barred(request: PrivacyRequest, address: CollectionAddress) -> Outcome | None:
    """The outcome when the collection was already erased for this request, or may not be changed."""
    done = request.store.get(ledger_name(address))
    if done:
        log.info("%s was already erased at try %s (%s rows): not erasing again", address, done["try_number"],
                 done["masked"])
        return Outcome("complete", masked=done["masked"], detail={"masked_at_try": done["try_number"]})
    if request.config.mapping(address.dataset).access == "read":
        reason = f"dataset '{address.dataset}' is read-only (access: read): nothing erased"
        log.warning("%s: %s", address, reason)
        return Outcome("read_only", detail={"reason": reason})
    return None


def record_manual_entry(request: PrivacyRequest, address: CollectionAddress, rows: list[dict[str, Any]],
                        by: str) -> Outcome:
    """The records a person found in a manual collection flow on like queried rows."""
    count = record_found(request, address, rows)
    request.store.add_event("manual_entry", collection=str(address), rows=count, by=by)
    log.info("%s: %d record(s) entered by %s", address, count, by)
    return Outcome("manual_entry", rows=count, detail={"entered_by": by})


def manual_erasure_fields(request: PrivacyRequest, collection: Collection) -> dict[str, MaskingStrategySpec]:
    """What a person erases by hand: the erasure targets, less primary keys and read-only fields."""
    return {path: spec for path, spec in request.policy.erasure_fields(collection).items()
            if not (collection.field(path).primary_key or collection.field(path).read_only)}


def manual_erasure_work(request: PrivacyRequest, address: CollectionAddress
                        ) -> tuple[Outcome | None, list[dict[str, Any]], dict[str, MaskingStrategySpec]]:
    """The records and fields a person must erase by hand, or the outcome when nobody needs asking: already
    confirmed, read-only, no field targeted, or nothing was found."""
    early = erasure_done_or_barred(request, address)
    if early:
        return early, [], {}
    fields = manual_erasure_fields(request, request.config.graph.collections[address])
    if not fields:
        return Outcome("nothing_to_erase"), [], {}
    if not request.store.exists(rows_name(address)):
        raise RequestError(f"the records entered for {address} are gone (the request was finished): clear "
                           f"access.{address.task_suffix} with its downstream tasks instead")
    rows = list(request.store.read_rows(rows_name(address)))
    if not rows:
        return Outcome("nothing_found"), [], fields
    return None, rows, fields


def record_manual_erasure(request: PrivacyRequest, address: CollectionAddress, erased: int, fields: list[str],
                          by: str, try_number: int) -> Outcome:
    """The person's confirmation is the collection's erasure ledger entry: it is never asked for twice."""
    request.store.put(ledger_name(address), {"masked": erased, "fields": fields, "try_number": try_number,
                                             "confirmed_by": by, "time": datetime.now(UTC).isoformat()})
    request.store.add_event("manual_erasure_confirmed", collection=str(address), records=erased, fields=fields,
                            by=by, try_number=try_number)
    log.info("%s: %d record(s) erased by hand, confirmed by %s", address, erased, by)
    return Outcome("complete", masked=erased, detail={"fields": fields, "confirmed_by": by,
                                                      "masked_at_try": try_number})


def _prepare_instruction(request: PrivacyRequest, address: CollectionAddress) -> Outcome:
    config = request.config
    instruction = build_instruction(config.graph.collections[address], config.plan.inputs[address],
                                    request.incoming_values(address), request.policy)
    request.store.put(instruction_name(address), instruction)
    log.info("%s: instructions prepared: %d locator field(s), %d field(s) to erase", address,
             len(instruction["locators"]), len(instruction["erase"]))
    return Outcome("instructions_prepared", detail={"locator_fields": len(instruction["locators"]),
                                                    "fields_to_erase": sorted(instruction["erase"])})


def field_masks(request: PrivacyRequest, collection: Collection) -> dict[str, FieldMask]:
    """The columns to mask with their strategies; fields that cannot be masked are logged and left out."""
    chosen = {}
    for path, spec in request.policy.erasure_fields(collection).items():
        fld = collection.field(path)
        assert fld is not None
        skip = None
        if fld.primary_key:
            skip = "primary key"
        elif fld.read_only:
            skip = "read-only field"
        elif "." in path:
            skip = "nested field (SQL erasure masks top-level columns only)"
        elif spec.strategy != "null_rewrite" and fld.data_type not in (None, "string"):
            skip = f"strategy '{spec.strategy}' writes text, the field is '{fld.data_type}'"
        if skip:
            log.warning("%s: not masking %s: %s", collection.address, path, skip)
        else:
            chosen[path] = (spec, fld.length)
    if not chosen:
        return {}
    secrets = request.store.get("secrets.json")
    if secrets is None:
        raise RequestError("masking secrets are missing: clear validate_request to make them")
    return {path: FieldMask(Masker(spec.strategy, spec.configuration, secrets), length)
            for path, (spec, length) in chosen.items()}
