"""Where a masked value goes in a MongoDB document: fideslang paths (``workplace_info.position``,
``emergency_contacts.phone``, ``children``) walked through the document access found, arrays included.

An array on a path is either one that a value arriving on the collection's edges was matched in (``thread``
when the subject was found by ``thread.comment``, ``derived_emails`` when found by it): then only its elements
that match are the subject's, and only they are masked; or any other array, all of whose elements are the
subject's. Each target is one value to mask: its position in the document as found (to prove the erasure by
reading it back) and the update that masks it through ``arrayFilters`` (by the element's value and, where
the array was matched, by the matching condition), so that an element moved since access is still found and
an element of someone else is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model.values import values_at


@dataclass
class Target:
    """One value of one document to mask: ``position`` in the document as found (keys and indices), the
    ``path`` it is set at (with ``$[id]`` for array elements) and the ``filters`` the identifiers take."""

    position: tuple[str | int, ...]
    original: Any
    path: str
    filters: list[dict[str, Any]] = field(default_factory=list)


def _matches(element: Any, rest: str | None, values: list[Any]) -> bool:
    if rest is None:
        return element in values
    return isinstance(element, dict) and any(v in values for v in values_at(element, rest))


def targets(document: dict[str, Any], path: str, inputs: dict[str, list[Any]], ident: dict[tuple[Any, ...], str]
            ) -> tuple[list[Target], str | None]:
    """The values at ``path`` in ``document`` that erasure masks, or why none can be (an array in an array).

    ``inputs`` are the values that arrived on the collection's edges (field path -> values); ``ident`` names
    the arrayFilters identifiers of one document's update (one per distinct array element value)."""
    parts = path.split(".")
    node: Any = document
    for depth, name in enumerate(parts):
        if not isinstance(node, dict) or name not in node:
            return [], None  # absent: nothing to mask
        node = node[name]
        if isinstance(node, list):
            return _array_targets(node, parts, depth, inputs, ident)
    return [Target(tuple(parts), node, path)], None


def _array_targets(array: list[Any], parts: list[str], depth: int, inputs: dict[str, list[Any]],
                   ident: dict[tuple[Any, ...], str]) -> tuple[list[Target], str | None]:
    head, rest = ".".join(parts[: depth + 1]), ".".join(parts[depth + 1:]) or None
    # The conditions that make an element the subject's: the inputs matched inside this array.
    conditions = [(None if p == head else p[len(head) + 1:], v) for p, v in inputs.items()
                  if v and (p == head or p.startswith(head + "."))]
    result: list[Target] = []
    for index, element in enumerate(array):
        if conditions and not any(_matches(element, sub, values) for sub, values in conditions):
            continue
        if rest is None:
            original = element
        else:
            if not isinstance(element, dict):
                continue
            node: Any = element
            for name in rest.split("."):
                node = node.get(name) if isinstance(node, dict) else None
            if isinstance(node, list):
                return [], f"'{'.'.join(parts)}' holds an array inside an array: not masked"
            original = node
        key = (head, rest, repr(original))
        name = ident.setdefault(key, f"e{len(ident)}")  # equal elements share one identifier (no conflict)
        element_filter: dict[str, Any] = {name if sub is None else f"{name}.{sub}": {"$in": values}
                                          for sub, values in conditions}
        element_filter[name if rest is None else f"{name}.{rest}"] = original
        position = (*parts[: depth + 1], index, *(rest.split(".") if rest else ()))
        result.append(Target(position, original, f"{head}.$[{name}]" + (f".{rest}" if rest else ""),
                             [element_filter]))
    return result, None


def value_at(document: Any, position: tuple[str | int, ...]) -> tuple[bool, Any]:
    """The value at a position of a document read back; (False, None) when the position is gone."""
    node = document
    for step in position:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return False, None
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return False, None
            node = node[step]
    return True, node
