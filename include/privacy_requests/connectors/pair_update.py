"""One UPDATE that writes each row its own value: a join of the table with a list of (primary key, new values).

A CASE with one branch per row made the database compare every row with every branch and cost SQLAlchemy
most of the time to build; a join looks each key up once. The statement text depends only on the table,
the columns and the number of rows, so a chunk of the usual size is built once and reused; every key and
value is a bound parameter (the driver's positional placeholders). Needs SQLite 3.33 or later (UPDATE FROM).
What differs between databases is in dialects.py.

The pairs are typed by the table itself: ``SELECT key AS k0, col AS m0 FROM t WHERE 1 = 0 UNION ALL VALUES
(...)`` gives the list the column types (PostgreSQL would otherwise read a text key as ``text`` and refuse to
compare it with a ``uuid``) and, on MariaDB, the column collations (a list of literals would have the
connection's collation, and comparing two columns of different collations is an error there).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from ..errors import DataSourceError
from .dialects import DIFFERS, PLACEHOLDERS, joined_update_names_table, placeholder, quoter, values_rows


@dataclass(frozen=True)
class PairUpdate:
    """The statement for a number of pairs, in the driver's own placeholders: it goes to the driver as it is,
    since binding a thousand named parameters through SQLAlchemy cost as much as the UPDATE itself."""

    sql: str
    constants_first: bool  # SET comes before the pairs in the text (UPDATE ... SET ... FROM), after on MariaDB

    def parameters(self, pairs: Sequence[tuple[Sequence[Any], Sequence[Any]]], constants: Sequence[Any]
                   ) -> tuple[Any, ...]:
        """The values in the placeholders' order: per pair its key values then its new values; the constants'
        values where the SET clause stands."""
        listed = (value for key, new in pairs for value in (*key, *new))
        return (*constants, *listed) if self.constants_first else (*listed, *constants)


@lru_cache(maxsize=128)
def pair_update(dialect: Dialect, table: str, keys: tuple[str, ...], per_row: tuple[str, ...],
                constants: tuple[str, ...], rows: int) -> PairUpdate:
    """The UPDATE for ``rows`` pairs, made once per shape.

    A per-row column is set from the pairs, or left as it is where the pair holds NULL (the value found was
    NULL: there is nothing to mask); a constant column is set to its one value.
    """
    mark = placeholder(dialect)
    if mark is None:
        raise DataSourceError(f"the database driver's parameter style '{dialect.paramstyle}' is not supported "
                              f"for per-row masks (supported: {', '.join(PLACEHOLDERS)})")
    quote = quoter(dialect, mark)
    tbl = quote(table)
    pairs, on = _pairs(dialect, mark, quote, tbl, keys, per_row, rows)
    mysql = joined_update_names_table(dialect)
    target = (lambda c: f"{tbl}.{quote(c)}") if mysql else quote
    sets = ", ".join([*(f"{target(c)} = COALESCE(v.m{i}, {tbl}.{quote(c)})" for i, c in enumerate(per_row)),
                      *(f"{target(c)} = {mark}" for c in constants)])
    if mysql:
        return PairUpdate(f"UPDATE {tbl} JOIN {pairs} ON {on} SET {sets}", constants_first=False)
    # PostgreSQL, SQLite, Snowflake
    return PairUpdate(f"UPDATE {tbl} SET {sets} FROM {pairs} WHERE {on}", constants_first=True)


def _pairs(dialect: Dialect, mark: str, quote: Callable[[str], str], tbl: str, keys: tuple[str, ...],
           per_row: tuple[str, ...], rows: int) -> tuple[str, str]:
    """The pairs as a derived table ``v`` typed by the table (module docstring), and the join condition."""
    columns = [f"k{i}" for i in range(len(keys))] + [f"m{i}" for i in range(len(per_row))]
    typed = ", ".join(f"{quote(c)} AS {n}" for c, n in zip([*keys, *per_row], columns, strict=True))
    listed = values_rows(dialect, mark, len(columns), rows)
    pairs = f"(SELECT {typed} FROM {tbl} WHERE 1 = 0 UNION ALL {listed}) AS v"
    on = " AND ".join(f"{tbl}.{quote(k)} = v.k{i}" for i, k in enumerate(keys))
    return pairs, on


@dataclass(frozen=True)
class Executed:
    """What a pair statement gave: the rows it changed, and the row a counting statement returns."""

    rowcount: int
    row: tuple[Any, ...] = ()


def execute(conn: Connection, sql: str, parameters: Sequence[Any]) -> Executed:
    """Run a pair statement (``%s`` or ``?`` placeholders) with its parameters, in ``conn``'s transaction.

    With psycopg 3 (what Airflow's PostgresHook uses) the statement goes to a RawCursor in PostgreSQL's own
    ``$n`` placeholders: psycopg's other cursors rewrite ``%s`` placeholders with a scan of the whole text on
    every execution (texts this long are not cached): 120 ms for a chunk of 5,000 pairs, more than the
    database took to run it, twice per chunk with proof of erasure. A driver error is raised as SQLAlchemy
    raises it from the other drivers (a DBAPIError), so the connector classifies it the same way."""
    if conn.dialect.driver != "psycopg":
        result = conn.exec_driver_sql(sql, tuple(parameters))
        return Executed(result.rowcount, tuple(result.fetchone() or ()) if result.returns_rows else ())
    import psycopg

    try:
        with psycopg.RawCursor(conn.connection.driver_connection) as cursor:
            cursor.execute(_numbered(sql), parameters)
            return Executed(cursor.rowcount, tuple(cursor.fetchone() or ()) if cursor.description else ())
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql[:200], None, exc, psycopg.Error) from exc


@lru_cache(maxsize=128)
def _numbered(sql: str) -> str:
    """``%s`` placeholders as ``$1, $2 ...`` in their order, and ``%%`` as ``%``."""
    numbers = iter(range(1, 1 << 31))
    return re.sub(r"%%|%s", lambda m: "%" if m[0] == "%%" else f"${next(numbers)}", sql)


@dataclass(frozen=True)
class PairCheck:
    """The proof of one chunk of masked rows in one statement: ``SELECT COUNT(*), SUM(<a masked field does not
    hold what the UPDATE wrote>)`` over the table joined with the chunk's (primary key, masked value) pairs,
    the same pairs (and placeholders) as the chunk's UPDATE. Constants come first (they stand in the SELECT
    list), then per pair its key values and its per-row values."""

    sql: str

    @staticmethod
    def parameters(pairs: Sequence[tuple[Sequence[Any], Sequence[Any]]], constants: Sequence[Any]) -> tuple[Any, ...]:
        return (*constants, *(value for key, new in pairs for value in (*key, *new)))


CHECKED_DIALECTS = tuple(DIFFERS)


def can_check(dialect: Dialect) -> bool:
    """Whether the proof can be one counting statement per chunk here; elsewhere the rows are read back."""
    return dialect.name in CHECKED_DIALECTS and placeholder(dialect) is not None


@lru_cache(maxsize=128)
def pair_check(dialect: Dialect, table: str, keys: tuple[str, ...], per_row: tuple[str, ...],
               nulls: tuple[str, ...], constants: tuple[str, ...], rows: int) -> PairCheck:
    """The counting statement for ``rows`` pairs, made once per shape: a ``nulls`` column must be NULL, a
    ``constants`` column must equal its parameter, a per-row column must equal its pair's value (NULL where
    the value found was NULL: the UPDATE left it as it was, and it must still be NULL). Values compare
    exactly (byte for byte), whatever the column's collation: a value a case-insensitive collation calls
    equal is still not the masked value."""
    if not can_check(dialect):
        raise DataSourceError(f"no counting proof for the '{dialect.name}' dialect with parameter style "
                              f"'{dialect.paramstyle}': read the rows back instead")
    mark = placeholder(dialect) or "?"
    quote = quoter(dialect, mark)
    tbl = quote(table)
    pairs, on = _pairs(dialect, mark, quote, tbl, keys, per_row, rows)
    differs = DIFFERS[dialect.name]
    bad = [*(f"{tbl}.{quote(c)} IS NOT NULL" for c in nulls),
           *(differs(f"{tbl}.{quote(c)}", mark) for c in constants),
           *(differs(f"{tbl}.{quote(c)}", f"v.m{i}") for i, c in enumerate(per_row))]
    counted = f"SELECT COUNT(*), SUM(CASE WHEN {' OR '.join(bad) or '1 = 0'} THEN 1 ELSE 0 END) FROM {tbl}"
    if not per_row and len(keys) == 1:
        # Constants only: the keys as an IN list, as the chunk's UPDATE has them (PostgreSQL hashed the whole
        # table to join it with a list of keys, where an IN list is scanned once or looked up by index).
        return PairCheck(f"{counted} WHERE {tbl}.{quote(keys[0])} IN ({', '.join([mark] * rows)})")
    return PairCheck(f"{counted} JOIN {pairs} ON {on}")
