"""Provenance: which subjects of a batch each value and each found row belongs to.

Values arriving on a collection's edges carry the subjects they came from (an identity value its subject; a
value read from an upstream row every subject of that row). A row found belongs to every subject whose value
matches one of the row's input fields, so a row reached from two subjects belongs to both. Values match as
the subject claim does (in_flight): text compared trimmed and case-folded, since the database's collation may
return ``Jane@X.com`` for ``jane@x.com``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..values import values_at


def match_key(value: Any) -> str:
    """The key a value is matched by: text trimmed and case-folded, anything else as canonical JSON."""
    if isinstance(value, str):
        return value.strip().casefold()
    return json.dumps(value, sort_keys=True, default=str)


class Provenance:
    """Per field: each distinct value (as first seen) and the positions of the subjects it belongs to."""

    def __init__(self) -> None:
        self._fields: dict[str, dict[str, tuple[Any, set[int]]]] = {}

    def add(self, field: str, value: Any, subjects: Iterable[int]) -> None:
        entry = self._fields.setdefault(field, {}).setdefault(match_key(value), (value, set()))
        entry[1].update(subjects)

    def values(self) -> dict[str, list[Any]]:
        """Per field, the distinct values (what the query asks for)."""
        return {f: [v for v, _ in entries.values()] for f, entries in self._fields.items() if entries}

    def entries(self, field: str) -> Iterable[tuple[Any, set[int]]]:
        return self._fields.get(field, {}).values()

    @property
    def fields(self) -> list[str]:
        return sorted(self._fields)

    def subjects_of(self, row: dict[str, Any]) -> set[int]:
        """Every subject one of whose values the row holds in an input field."""
        found: set[int] = set()
        for field, entries in self._fields.items():
            for value in values_at(row, field):
                hit = entries.get(match_key(value))
                if hit:
                    found |= hit[1]
        return found

    def by_subject(self) -> dict[int, dict[str, list[Any]]]:
        """Per subject, the values that arrived for it, by field (a vendor instruction's locators)."""
        result: dict[int, dict[str, list[Any]]] = {}
        for field, entries in self._fields.items():
            for value, subjects in entries.values():
                for subject in subjects:
                    result.setdefault(subject, {}).setdefault(field, []).append(value)
        return result
