"""Proof of erasure: after masking a SQL collection, every masked field must hold its masked value; a database
trigger that put a value back, a lagging replica or a concurrent write is caught here instead of being
reported as erased.

In the database (``count``): each chunk the UPDATEs masked is checked by one statement that counts, among the
chunk's primary keys, the rows present and those whose masked fields do not hold what the UPDATE wrote
(connectors/pair_update.py ``pair_check``), once the masking has committed. Rows are read back (``verify``)
only when that count is not zero, to say which fields failed; on a dialect without the counting statement;
and when a cleared task must know, row by row, what is left to mask.

The masked value of each strategy is known without the database: NULL for null_rewrite, the rewrite value,
the deterministic value for hash, hmac and aes_encrypt (computed, like the mask, from the value access found),
and for random_string_rewrite a string of its form (its length and alphabet, with the suffix). A per-row
strategy leaves NULL as it is, so NULL is its masked value there. Counts leave this module, never values.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, column, select, table, tuple_

from ..model.graph import Collection
from ..model.masking import FieldMask
from ..model.values import in_chunks, rows_per_statement
from ..store.store import dumps
from .pair_update import execute

READ_BATCH = 5000  # rows read back per SELECT at most
_RANDOM_ALPHABET = set(string.ascii_lowercase + string.digits)


@dataclass
class Verification:
    """What reading the masked rows back found: ``present`` rows of those masked, ``verified`` of them hold
    every masked value, ``missing`` are gone; ``left`` holds, per row that did not verify, its fields that
    still need masking (kept in memory only, to mask what is left)."""

    present: int = 0
    verified: int = 0
    missing: int = 0
    statements: int = 0
    left: list[tuple[frozenset[str], dict[str, Any]]] = field(default_factory=list)
    failed_chunks: list[int] = field(default_factory=list)  # by the counting statements: chunks to read back

    @property
    def unverified(self) -> int:
        return self.present - self.verified


def holds_masked_value(mask: FieldMask, original: Any, current: Any) -> bool:
    """Whether ``current`` is what masking ``original`` writes (see the module's docstring)."""
    if not mask.per_row:
        return current == mask.apply(None)
    if original is None:
        return current is None
    if mask.masker.strategy == "random_string_rewrite":
        return _random_form(mask, current) and current != str(original)
    return current == mask.apply(original)


def _random_form(mask: FieldMask, value: Any) -> bool:
    """A random_string_rewrite value: ``length`` letters and digits, then the suffix, cut to the column."""
    if not isinstance(value, str):
        return False
    config = mask.masker.config
    preservation = getattr(config, "format_preservation", None)
    suffix = preservation.suffix if preservation else ""
    random_length = config.length  # type: ignore[attr-defined]
    expected = random_length + len(suffix)
    if mask.length is not None:
        expected = min(expected, mask.length)
    head = min(random_length, expected)
    return (len(value) == expected and set(value[:head]) <= _RANDOM_ALPHABET
            and value[head:] == suffix[: expected - head])


def verify(engine: Engine, collection: Collection, rows: Iterable[dict[str, Any]],
           masks: dict[str, FieldMask]) -> Verification:
    """Read the rows access found back by primary key and check each masked field, in batches (one SELECT a
    batch, parameterized). Database errors propagate for the connector to classify."""
    keys = [f.column for f in collection.primary_keys]
    tbl = table(collection.address.collection, *(column(c) for c in {*keys, *masks}))
    result = Verification()
    with engine.connect() as conn:
        for batch in in_chunks(rows, rows_per_statement(len(keys), READ_BATCH)):
            pk_values = [tuple(r[k] for k in keys) for r in batch]
            where = (tbl.c[keys[0]].in_([v[0] for v in pk_values]) if len(keys) == 1
                     else tuple_(*(tbl.c[k] for k in keys)).in_(pk_values))
            result.statements += 1
            current = {_key(row, keys): dict(row)
                       for row in conn.execute(select(*tbl.c).where(where)).mappings()}
            for found in batch:
                now = current.get(_key(found, keys))
                if now is None:
                    result.missing += 1
                    continue
                result.present += 1
                left = frozenset(name for name, mask in masks.items()
                                 if not holds_masked_value(mask, found.get(name), now.get(name)))
                if left:
                    result.left.append((left, found))
                else:
                    result.verified += 1
    return result


@dataclass
class Checks:
    """The counting statements of a collection's masking, one per chunk of ``size`` rows found (in the order
    the rows are read), collected while masking and run once it has committed."""

    size: int
    statements: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)


def count(engine: Engine, checks: Checks) -> Verification:
    """Run every chunk's counting statement: rows present of those masked, and rows not holding their masked
    values. A chunk with such rows is named in ``failed_chunks`` for a read-back."""
    result = Verification()
    with engine.connect() as conn:
        for index, (sql, parameters) in enumerate(checks.statements):
            result.statements += 1
            present, bad = execute(conn, sql, parameters).row
            present, bad = int(present or 0), int(bad or 0)
            result.present += present
            result.verified += present - bad
            if bad:
                result.failed_chunks.append(index)
    return result


def rows_of_chunks(rows: Iterable[dict[str, Any]], size: int, chunks: list[int]) -> Iterable[dict[str, Any]]:
    """The rows of the given chunks (as masking cut them), read again from the store."""
    wanted = set(chunks)
    for index, chunk in enumerate(in_chunks(rows, size)):
        if index in wanted:
            yield from chunk


def fields_left(verification: Verification) -> dict[str, int]:
    """Per field, how many rows read back do not hold its masked value (names and counts, never values)."""
    counted: dict[str, int] = {}
    for fields, _ in verification.left:
        for name in fields:
            counted[name] = counted.get(name, 0) + 1
    return dict(sorted(counted.items()))


def by_fields_left(verification: Verification) -> dict[frozenset[str], list[dict[str, Any]]]:
    """The rows that did not verify, grouped by the fields each still needs masked: masking a group touches
    only those fields, so a value already masked is never masked again (a hash of a hash)."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for fields, row in verification.left:
        groups.setdefault(fields, []).append(row)
    return groups


def _key(row: Any, keys: list[str]) -> str:
    """A primary key as the request store writes it, so a key read back compares with one found by access."""
    return dumps([row[k] for k in keys])
