"""Provenance: which subjects of a batch each value and each found row belongs to.

Values arriving on a collection's edges carry the subjects they came from (an identity value its subject; a
value read from an upstream row every subject of that row). A row found belongs to every subject whose value
matches one of the row's input fields, so a row reached from two subjects belongs to both. Values match
exactly, as the query asked for them; a value the database returned that nobody asked for exactly (a
case-insensitive or space-padding collation returns ``Jane@X.com`` for ``jane@x.com``) matches trimmed and
case-folded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..model.values import values_at

# One encoder for every key: json.dumps with options builds a new encoder per call, which dominated a batch's
# access step (a key is made for every value arriving and every value of every row found).
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str).encode


def exact_key(value: Any) -> str:
    """A value as the query asks for it (the single request's de-duplication: canonical JSON). Text and
    integers, nearly every key, take the encoder's own fast paths; the result is json.dumps' exactly."""
    if type(value) is int:
        return int.__repr__(value)
    return _CANONICAL(value)


def folded_key(value: Any) -> str:
    """A value as a lenient collation may return it: text trimmed and case-folded."""
    return value.strip().casefold() if isinstance(value, str) else exact_key(value)


class Provenance:
    """Per field: each distinct value and the positions of the subjects it belongs to."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, tuple[Any, set[int]]]] = {}
        self._folded: dict[str, dict[str, set[int]]] = {}

    def add(self, field: str, value: Any, subjects: Iterable[int]) -> None:
        subjects = set(subjects)
        self._exact.setdefault(field, {}).setdefault(exact_key(value), (value, set()))[1].update(subjects)
        self._folded.setdefault(field, {}).setdefault(folded_key(value), set()).update(subjects)

    def values(self) -> dict[str, list[Any]]:
        """Per field, the distinct values (what the query asks for)."""
        return {f: [v for v, _ in entries.values()] for f, entries in self._exact.items() if entries}

    def entries(self, field: str) -> Iterable[tuple[Any, set[int]]]:
        return self._exact.get(field, {}).values()

    def subjects_of(self, row: dict[str, Any]) -> set[int]:
        """Every subject one of whose values the row holds in an input field: the exact value's subjects, or,
        when the database returned a value none asked for exactly (its collation), those of the trimmed,
        case-folded value."""
        found: set[int] = set()
        for field, entries in self._exact.items():
            for value in values_at(row, field):
                hit = entries.get(exact_key(value))
                found |= hit[1] if hit else self._folded[field].get(folded_key(value), set())
        return found

    def by_subject(self) -> dict[int, dict[str, list[Any]]]:
        """Per subject, the values that arrived for it, by field (a vendor instruction's locators)."""
        result: dict[int, dict[str, list[Any]]] = {}
        for field, entries in self._exact.items():
            for value, subjects in entries.values():
                for subject in subjects:
                    result.setdefault(subject, {}).setdefault(field, []).append(value)
        return result
