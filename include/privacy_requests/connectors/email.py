"""Email connector: for a vendor's collection, the instruction that tells the vendor how to find the
subject's records and which fields to erase. It never queries anything."""

from __future__ import annotations

from typing import Any

from ..graph import Collection, Input
from ..policy import Policy


def build_instruction(
    collection: Collection, inputs: list[Input], arrived: dict[str, list[Any]], policy: Policy
) -> dict[str, Any]:
    """One instruction: ``locators`` (field -> values that arrived on its edges, plus the address of an
    upstream field of the same vendor dataset, whose values only the vendor holds), ``erase`` (field path
    -> masking strategy name; never a primary key or read-only field), ``located_by_values`` and
    ``upstream`` (the vendor's own collections it is located through)."""
    locators: dict[str, list[Any]] = {name: list(values) for name, values in arrived.items() if values}
    upstream: set[str] = set()
    for edge in inputs:
        if edge.source is not None and edge.source.dataset == collection.address.dataset:
            address = f"{edge.source}:{edge.source_field}"
            upstream.add(str(edge.source))
            locators.setdefault(edge.target_field, [])
            if address not in locators[edge.target_field]:
                locators[edge.target_field].append(address)
    erase = {
        path: spec.strategy
        for path, spec in policy.erasure_fields(collection).items()
        if not (fld := collection.field(path)) or not (fld.primary_key or fld.read_only)
    }
    return {
        "collection": str(collection.address),
        "name": collection.address.collection,
        "locators": locators,
        "erase": erase,
        "located_by_values": any(arrived.values()),
        "upstream": sorted(upstream),
    }


def locatable(instructions: list[dict[str, Any]]) -> set[str]:
    """Collections the vendor can find: located by values we hold, or through one it can find."""
    found = {i["collection"] for i in instructions if i["located_by_values"]}
    changed = True
    while changed:
        changed = False
        for item in instructions:
            if item["collection"] not in found and found & set(item["upstream"]):
                found.add(item["collection"])
                changed = True
    return found


def sample_instructions() -> list[dict[str, Any]]:
    """Dummy instructions for a vendor's test email (no personal data, no privacy request)."""
    return [
        {
            "collection": "test_dataset:test_collection",
            "name": "test_collection",
            "locators": {"id": ["example_id"]},
            "erase": {"test_field": "null_rewrite"},
            "located_by_values": True,
            "upstream": [],
        },
        {
            "collection": "test_dataset:other_collection",
            "name": "other_collection",
            "locators": {"parent_id": ["test_dataset:test_collection:id"]},
            "erase": {},
            "located_by_values": False,
            "upstream": ["test_dataset:test_collection"],
        },
    ]
