"""One UPDATE that writes each row its own value: a join of the table with a list of (primary key, new values).

A CASE with one branch per row made the database compare every row with every branch and cost SQLAlchemy
most of the time to build; a join looks each key up once. The statement text depends only on the table,
the columns and the number of rows, so a chunk of the usual size is compiled once and reused; every key and
value is a bound parameter.

The pairs are typed by the table itself: ``SELECT key AS k0, col AS m0 FROM t WHERE 1 = 0 UNION ALL VALUES
(...)`` gives the list the column types (PostgreSQL would otherwise read a text key as ``text`` and refuse to
compare it with a ``uuid``) and, on MariaDB, the column collations (a list of literals would have the
connection's collation, and comparing two columns of different collations is an error there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Dialect, TextClause, text


@dataclass(frozen=True)
class PairUpdate:
    """The statement for a number of pairs, and the names of its parameters in the order they are given."""

    statement: TextClause
    names: tuple[str, ...]

    def parameters(self, pairs: Sequence[tuple[Sequence[Any], Sequence[Any]]], constants: Sequence[Any]
                   ) -> dict[str, Any]:
        """Per pair its key values then its new values, then the constants' values."""
        flat = [value for key, new in pairs for value in (*key, *new)]
        flat.extend(constants)
        return dict(zip(self.names, flat, strict=True))


@lru_cache(maxsize=128)
def pair_update(dialect: Dialect, table: str, keys: tuple[str, ...], per_row: tuple[str, ...],
                constants: tuple[str, ...], rows: int) -> PairUpdate:
    """The UPDATE for ``rows`` pairs, made once per shape (parsing a statement of a thousand parameters is
    what took the time).

    A per-row column is set from the pairs, or left as it is where the pair holds NULL (the value found was
    NULL: there is nothing to mask); a constant column is set to its one value.
    """
    quote = dialect.identifier_preparer.quote
    tbl = quote(table)
    columns = [f"k{i}" for i in range(len(keys))] + [f"m{i}" for i in range(len(per_row))]
    typed = ", ".join(f"{quote(c)} AS {n}" for c, n in zip([*keys, *per_row], columns, strict=True))
    rows_names = [[f"{n}_{r}" for n in columns] for r in range(rows)]
    values = ", ".join("(" + ", ".join(f":{n}" for n in names) + ")" for names in rows_names)
    pairs = f"(SELECT {typed} FROM {tbl} WHERE 1 = 0 UNION ALL VALUES {values}) AS v"
    on = " AND ".join(f"{tbl}.{quote(k)} = v.k{i}" for i, k in enumerate(keys))
    mysql = dialect.name in ("mysql", "mariadb")  # a multi-table UPDATE names its target columns by table
    target = (lambda c: f"{tbl}.{quote(c)}") if mysql else quote
    sets = ", ".join([*(f"{target(c)} = COALESCE(v.m{i}, {tbl}.{quote(c)})" for i, c in enumerate(per_row)),
                      *(f"{target(c)} = :c{i}" for i, c in enumerate(constants))])
    if mysql:
        sql = f"UPDATE {tbl} JOIN {pairs} ON {on} SET {sets}"
    else:
        sql = f"UPDATE {tbl} SET {sets} FROM {pairs} WHERE {on}"  # PostgreSQL; SQLite since 3.33
    names = tuple(name for row in rows_names for name in row) + tuple(f"c{i}" for i in range(len(constants)))
    return PairUpdate(text(sql), names)
