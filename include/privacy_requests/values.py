"""Reading field values out of rows (nested paths, arrays) and casting them to a field's declared type."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def values_at(row: dict[str, Any], path: str) -> Iterator[Any]:
    """Every non-null value at a dotted path; arrays are walked, JSON text columns decoded."""
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


def cast(value: Any, data_type: str | None) -> Any:
    """Cast to the declared type (``integer``, ``string``, ``float``, ``boolean``; ``x[]`` as ``x``).

    A value that does not cast becomes None (callers drop it: it cannot match the column); booleans accept
    true/1/yes, anything else is False.
    """
    base = (data_type or "").removesuffix("[]")
    try:
        if base == "integer":
            return int(value)
        if base == "float":
            return float(value)
        if base == "string":
            return str(value)
        if base == "boolean":
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
    except (TypeError, ValueError):
        return None
    return value


def distinct(values: Iterable[Any]) -> list[Any]:
    """De-duplicate while keeping first-seen order (so queries and emails are stable)."""
    seen: dict[str, Any] = {}
    for value in values:
        key = json.dumps(value, sort_keys=True, default=str)
        seen.setdefault(key, value)
    return list(seen.values())
