"""Reading field values out of rows (nested paths, arrays), casting them to a field's declared type, and
cutting rows into statement-sized chunks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def values_at(row: dict[str, Any], path: str) -> Iterator[Any]:
    """Every non-null value at a dotted path; arrays are walked, JSON text columns decoded."""
    if "." not in path and isinstance(row, dict):  # a column holding one value: nearly every call, kept short
        node = row.get(path)
        if not isinstance(node, list):
            if node is not None:
                yield node
            return
    stack: list[tuple[Any, list[str]]] = [(row, path.split("."))]
    while stack:
        node, parts = stack.pop()
        if isinstance(node, str) and parts:
            try:
                node = json.loads(node)
            except ValueError:
                continue
        if isinstance(node, list):
            stack.extend((item, parts) for item in reversed(node))
        elif not parts:
            if node is not None:
                yield node
        elif isinstance(node, dict) and parts[0] in node:
            stack.append((node[parts[0]], parts[1:]))


def cast(value: Any, data_type: str | None, *, strict: bool = False) -> Any:
    """The value as its field's declared type (``integer``, ``float``, ``boolean``, ``string``; ``x[]`` a list).

    One rule for every value: 3.7 is no integer, "abc" no boolean (true/false/1/0/yes/no are), an object or a
    list no string. ``strict`` (a person typed it) raises ValueError saying why, and an ``x[]`` field takes a
    list; otherwise (values arriving on an edge, one element at a time) an ``x[]`` field takes a single ``x``,
    and a value that does not fit becomes None, which callers drop: it cannot match the column.
    """
    data_type = (data_type or "").strip()
    if not strict and data_type.endswith("[]") and not isinstance(value, list):
        data_type = data_type[:-2]
    try:
        return _cast(value, data_type)
    except (TypeError, ValueError) as exc:
        if strict:
            raise ValueError(str(exc) or f"not a valid {data_type}") from None
        return None


def _cast(value: Any, data_type: str) -> Any:
    if value is None or not data_type:
        return value
    if data_type.endswith("[]"):
        if not isinstance(value, list):
            raise ValueError(f"not a list of {data_type[:-2]}")
        return [_cast(item, data_type[:-2]) for item in value]
    if isinstance(value, (dict, list)):
        raise ValueError(f"an {'object' if isinstance(value, dict) else 'array'} is not a {data_type}")
    if data_type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "false", "0", "no"):
            return text in ("true", "1", "yes")
        raise ValueError("not true or false")
    if isinstance(value, bool):
        raise ValueError(f"true/false is not a {data_type}")
    if data_type == "integer":
        try:  # the reason is ours: Python's own messages quote the value
            number = int(value.strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ValueError("not a whole number") from None
        if number != value and not isinstance(value, str):  # 3.7 or Decimal("5.5") would be cut
            raise ValueError("not a whole number")
        return number
    if data_type == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("not a number") from None
    if data_type == "string":
        return str(value)
    return value


def distinct(values: Iterable[Any]) -> list[Any]:
    """De-duplicate while keeping first-seen order (so queries and emails are stable)."""
    seen: dict[str, Any] = {}
    for value in values:
        key = json.dumps(value, sort_keys=True, default=str)
        seen.setdefault(key, value)
    return list(seen.values())


# Bound parameters in one statement: under SQLite's 32,766 and PostgreSQL's and MySQL's 65,535.
PARAMETER_BUDGET = 30_000


def rows_per_statement(parameters_per_row: int, cap: int) -> int:
    """How many rows one statement may carry: ``cap``, or fewer where each row binds many parameters."""
    return max(1, min(cap, PARAMETER_BUDGET // max(1, parameters_per_row)))


def in_chunks(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """``rows`` in lists of ``size`` (the last one shorter), read lazily: one statement a list."""
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
