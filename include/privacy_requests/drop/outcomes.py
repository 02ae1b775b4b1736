"""The outcome of each work item, in the specification's status codes, decided from the rows that matched:

- 5 Not found: no row of the broker matches the hash.
- 4 Opted out: several consumers share the identifier (several rows of one consumer collection match): each
  is opted out of sale and sharing (``drop.opt_out``) instead of being deleted.
- 2 Exempted: every matching row is exempt (``drop.exemptions``, whose reason is recorded).
- 3 Deleted: one consumer, not all exempt: the consumer's erasure runs through the batch engine (policy
  ``drop.policy``), seeded with the identity values the broker's own row holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .matching import Target

EXEMPTED, DELETED, OPTED_OUT, NOT_FOUND = 2, 3, 4, 5
LABELS = {EXEMPTED: "exempted", DELETED: "deleted", OPTED_OUT: "opted out", NOT_FOUND: "not found"}


@dataclass
class Decision:
    status: int
    reason: str | None = None
    identity: dict[str, str] | None = None  # status 3: what the consumer's erasure starts from
    opt_out: list[tuple[str, str]] | None = None  # status 4: (collection, primary key as JSON) of each row


Match = tuple[str, str, Any]  # (collection address, primary key as JSON, anchor value): compact, millions fit


def decide(matches: list[Match], targets: dict[str, Target]) -> Decision:
    """One work item's outcome from its matching rows."""
    if not matches:
        return Decision(NOT_FOUND)
    keys_by_collection: dict[str, set[str]] = {}
    for address, key, _anchor in matches:
        if targets[address].consumer:
            keys_by_collection.setdefault(address, set()).add(key)
    if any(len(keys) > 1 for keys in keys_by_collection.values()):
        rows = [(address, key) for address, key, _anchor in matches]
        return Decision(OPTED_OUT, reason="several consumers share this identifier", opt_out=rows)
    live = [m for m in matches if targets[m[0]].exempt is None]
    if not live:
        reasons = sorted({targets[m[0]].exempt or "" for m in matches})
        return Decision(EXEMPTED, reason="; ".join(reasons))
    identity: dict[str, str] = {}
    for address, _key, anchor in live:
        identity_type = targets[address].anchor[0]
        if anchor is not None and str(anchor).strip():
            identity.setdefault(identity_type, str(anchor))
    if not identity:
        return Decision(NOT_FOUND, reason="matching rows hold no identity value to erase by")
    return Decision(DELETED, identity=identity)


def group_matches(found: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[Match]]:
    """Matches by (list, hash); a row found twice (a re-read) counts once."""
    groups: dict[tuple[str, str], list[Match]] = {}
    for match in found:
        entry = (match["address"], json.dumps(match["key"], default=str), match["anchor"])
        rows = groups.setdefault((match["list"], match["hash"]), [])
        if entry not in rows:
            rows.append(entry)
    return groups


def subjects_for(outcomes: Iterable[dict[str, Any]], identities: dict[str, dict[str, str]],
                 run_day: str) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """One erasure subject per consumer (work items naming the same consumer share it): (request id, identity,
    work item ids). The request id is the work item's id; when a work item is matched again on a later run (a
    record collected again), ``<id>-<YYYYMMDD>`` of that run, since the first id already names a request."""
    by_identity: dict[str, tuple[str, dict[str, str], list[str]]] = {}
    for outcome in outcomes:
        if outcome["status"] != DELETED:
            continue
        identity = identities[outcome["id"]]
        fingerprint = json.dumps(identity, sort_keys=True)
        if fingerprint not in by_identity:
            request_id = outcome["id"] if outcome.get("new") else f"{outcome['id']}-{run_day}"
            by_identity[fingerprint] = (request_id, identity, [])
        by_identity[fingerprint][2].append(outcome["id"])
    yield from by_identity.values()
