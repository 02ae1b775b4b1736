"""Erasure by deleting the record: the rows access found are deleted by primary key, then counted back by primary
key to prove they are gone.

A policy chooses it per erasure rule (``masking_strategy: {strategy: delete}``). The deletes of one collection
run in one transaction, one ``DELETE ... WHERE pk IN (...)`` per batch; a foreign key that still points at a
row makes the database refuse the whole collection (nothing is deleted), which the preflight reports before
anything changes (preflight.py, ``delete_problems``). Counts leave this module, never values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, column, delete, func, select, table, tuple_

from ..model.graph import Collection
from ..model.values import in_chunks, rows_per_statement

DELETE_BATCH = 5000  # rows per DELETE (and per counting SELECT) at most


@dataclass
class Presence:
    """What counting the deleted rows back found: ``keys`` distinct primary keys looked up, ``present`` of them
    still in the table."""

    keys: int = 0
    present: int = 0
    statements: int = 0

    @property
    def gone(self) -> int:
        return self.keys - self.present


def _where(tbl: Any, keys: list[str], values: list[tuple[Any, ...]]) -> Any:
    if len(keys) == 1:
        return tbl.c[keys[0]].in_([v[0] for v in values])
    return tuple_(*(tbl.c[k] for k in keys)).in_(values)


def _batches(collection: Collection, rows: Iterable[dict[str, Any]]) -> Iterable[tuple[Any, list[str],
                                                                                        list[tuple[Any, ...]]]]:
    keys = [f.column for f in collection.primary_keys]
    tbl = table(collection.address.collection, *(column(k) for k in keys))
    for batch in in_chunks(iter(rows), rows_per_statement(len(keys), DELETE_BATCH)):
        yield tbl, keys, list(dict.fromkeys(tuple(row[k] for k in keys) for row in batch))


def delete_rows(conn: Connection, collection: Collection, rows: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Delete the rows by primary key on ``conn`` (the caller's transaction); returns (rows deleted, statements).
    A key found twice is deleted once; a row already gone counts nothing."""
    deleted = statements = 0
    for tbl, keys, values in _batches(collection, rows):
        statements += 1
        deleted += conn.execute(delete(tbl).where(_where(tbl, keys, values))).rowcount
    return deleted, statements


def count_present(engine: Engine, collection: Collection, rows: Iterable[dict[str, Any]]) -> Presence:
    """How many of the rows' primary keys are still in the table: one ``SELECT COUNT(*)`` per batch."""
    result = Presence()
    with engine.connect() as conn:
        for tbl, keys, values in _batches(collection, rows):
            result.keys += len(values)
            result.statements += 1
            result.present += conn.execute(select(func.count()).select_from(tbl)
                                           .where(_where(tbl, keys, values))).scalar_one()
    return result
