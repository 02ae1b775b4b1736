"""The per-collection steps of a batch, set-based: one query per chunk of incoming values for all subjects
(``batch.chunk_size`` in privacy.yml), found rows streamed to the batch's store with the subjects they belong
to, and erasure of every row that belongs to at least one subject, once, through the same erasure step (and
ledger) as a single request. Memory holds the distinct values arriving on one collection's edges, never its rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from ..connectors.base import ConnectorFor
from ..connectors.vendor import build_instruction
from ..errors import RequestError, StepSkipped
from ..model.graph import CollectionAddress
from ..model.values import cast, values_at
from ..request.lifecycle import record_result
from ..steps.collection_steps import Outcome, erase_collection, erasure_began
from ..store import layout
from .provenance import Provenance
from .subjects import Batch

log = logging.getLogger(__name__)


def incoming(batch: Batch, address: CollectionAddress) -> Provenance:
    """The values arriving on the collection's edges for every subject, type-cast, with their subjects."""
    config = batch.config
    collection = config.graph.collections[address]
    arrived = Provenance()
    for edge in config.plan.inputs[address]:
        target = collection.field(edge.target_field)
        data_type = target.data_type if target else None
        if edge.source is None:
            for subject in batch.subjects():
                raw = subject.identity.get(edge.source_field)
                value = cast(raw, data_type) if raw is not None else None
                if value is not None:
                    arrived.add(edge.target_field, value, (subject.position,))
            continue
        name = layout.provenance_values(edge.source, edge.source_field)
        if not batch.store.exists(name):
            raise RequestError(f"the values of {edge.source}:{edge.source_field} are gone (the batch was finished): "
                               f"clear access.{edge.source.task_suffix} with its downstream tasks instead")
        for item in batch.store.read_rows(name):
            value = cast(item["v"], data_type)
            if value is not None:
                arrived.add(edge.target_field, value, item["s"])
    return arrived


def chunks(inputs: dict[str, list[Any]], size: int) -> Iterator[dict[str, list[Any]]]:
    """All fields in one statement while their values fit ``size``; else each field's values in slices."""
    if sum(len(v) for v in inputs.values()) <= size:
        yield inputs
        return
    for name, values in inputs.items():
        for start in range(0, len(values), size):
            yield {name: values[start : start + size]}


def access_batch_collection(batch: Batch, address: CollectionAddress, connector_for: ConnectorFor,
                            try_number: int) -> Outcome:
    """Find every subject's records in one collection; rows (with their subjects) and outgoing values (with
    theirs) go to the batch's store, and the rows per subject to its result. Once erasure has begun the rows
    found before it are kept, as for a single request."""
    store = batch.store
    if erasure_began(store) and store.exists(layout.rows(address)):
        previous = store.get(layout.result(layout.ACCESS, address)) or {}
        log.info("%s: erasure has begun for this batch, so the rows found before it are kept", address)
        return Outcome("kept", rows=previous.get("rows", 0))
    config = batch.config
    collection = config.graph.collections[address]
    arrived = incoming(batch, address)
    inputs = arrived.values()
    started = time.monotonic()
    connector = connector_for(address.dataset)
    out_fields = sorted(config.plan.out_fields(address))
    outgoing = {f: Provenance() for f in out_fields}
    per_subject: Counter[int] = Counter()
    unattributed = 0
    status: str | None = None
    keys = [f.column for f in collection.primary_keys] or collection.columns
    parts = list(chunks(inputs, config.settings.batch.chunk_size)) if inputs else []
    # A row matched by two chunks (two fields, or values a case-insensitive collation treats as equal) is kept
    # once: a short digest of its key is remembered while the collection is queried.
    seen: set[bytes] | None = set() if len(parts) > 1 else None

    def found() -> Iterator[dict[str, Any]]:
        nonlocal unattributed, status
        for part in parts:
            result = connector.retrieve(batch.request, collection, part)
            status = status or result.status
            for row in result.rows:
                if seen is not None:
                    key = hashlib.blake2b(json.dumps([row.get(k) for k in keys], default=str).encode(),
                                          digest_size=12).digest()
                    if key in seen:
                        continue
                    seen.add(key)
                subjects = arrived.subjects_of(row)
                if not subjects:
                    unattributed += 1  # matched by the database's rules but no subject's value: not ours to use
                    continue
                per_subject.update(subjects)
                for path, values in outgoing.items():
                    for value in values_at(row, path):
                        values.add(path, value, subjects)
                yield {"row": row, "subjects": sorted(subjects)}

    count = store.write_rows(layout.rows(address), found())
    for path, values in outgoing.items():
        store.write_rows(layout.provenance_values(address, path),
                         ({"v": v, "s": sorted(s)} for v, s in values.entries(path)))
    status = status or ("complete" if inputs else "no_input")
    outcome = Outcome(status, rows=count, seconds=round(time.monotonic() - started, 3),
                      statements=connector.statements,
                      detail={"subjects_with_rows": len(per_subject), "unattributed": unattributed})
    record_result(batch.request, layout.ACCESS, address, try_number, **outcome.as_dict(),
                  per_subject={str(k): v for k, v in sorted(per_subject.items())})
    log.info("%s: %s, %d rows for %d subject(s) in %.2f s (%d statement(s), %d input value(s))", address, status,
             count, len(per_subject), outcome.seconds, outcome.statements, sum(len(v) for v in inputs.values()))
    if unattributed:
        log.warning("%s: %d row(s) matched no subject's value exactly (collation): left out", address, unattributed)
    return outcome


def found_rows(batch: Batch, address: CollectionAddress) -> Iterator[dict[str, Any]]:
    """The rows access found for the batch, each once, without their subjects (what erasure masks)."""
    if not batch.store.exists(layout.rows(address)):
        raise RequestError(f"the rows found in {address} are gone (the batch was finished): clear "
                           f"access.{address.task_suffix} with its downstream tasks instead")
    return (item["row"] for item in batch.store.read_rows(layout.rows(address)))


def erase_batch_collection(batch: Batch, address: CollectionAddress, connector_for: ConnectorFor,
                           try_number: int) -> Outcome:
    """A database collection: every row found for any subject masked once, through the single request's
    erasure step (its ledger makes a cleared task report the recorded count). A vendor collection: one
    instruction per subject, for the batch's email."""
    if batch.config.mapping(address.dataset).kind == "email":
        outcome = _vendor_instructions(batch, address)
    else:
        outcome = erase_collection(batch.request, address, connector_for, try_number,
                                   rows=lambda: found_rows(batch, address))
    record_result(batch.request, layout.ERASURE, address, try_number, **outcome.as_dict())
    return outcome


def _vendor_instructions(batch: Batch, address: CollectionAddress) -> Outcome:
    """Per subject, the instruction its single request would record: locators from the values that arrived
    for it, the fields to erase."""
    policy = batch.policy
    if not policy.erasure_rules:
        raise StepSkipped(f"policy '{policy.key}' has no erasure rules")
    if batch.config.mapping(address.dataset).access == "read":
        reason = f"dataset '{address.dataset}' is read-only (access: read): nothing erased"
        log.warning("%s: %s", address, reason)
        return Outcome("read_only", detail={"reason": reason})
    collection = batch.config.graph.collections[address]
    fields = policy.erasure_fields(collection)
    arrived = incoming(batch, address).by_subject()
    inputs = batch.config.plan.inputs[address]
    count = batch.store.write_rows(layout.subject_instructions(address), (
        {"s": subject.position,
         "instruction": build_instruction(collection, inputs, arrived.get(subject.position, {}), fields)}
        for subject in batch.subjects()))
    log.info("%s: instructions prepared for %d subject(s), %d field(s) to erase", address, count, len(fields))
    return Outcome("instructions_prepared", detail={"subjects": count, "fields_to_erase": sorted(fields)})
