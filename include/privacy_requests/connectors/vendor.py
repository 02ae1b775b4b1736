"""Vendor connector: a vendor's collection is erased by the vendor, from an instruction that tells it how
to find the subject's records and which fields to erase. It never queries anything; the email that carries
the instructions of all of a vendor's collections is sent once, after all erasure (vendor_email.py)."""

from __future__ import annotations

import logging
from typing import Any

from ..model.graph import Collection, Input
from ..model.policy import MaskingStrategySpec
from ..request.request import PrivacyRequest
from ..store import layout
from .base import Erased, ErasureWork, Found

log = logging.getLogger(__name__)


class VendorConnector:
    """Access finds nothing (we hold none of the vendor's records); erasure records the instruction."""

    statements = 0

    def retrieve(self, request: PrivacyRequest, collection: Collection, inputs: dict[str, list[Any]]) -> Found:
        log.info("%s is a vendor (email) collection: nothing to query, 0 rows", collection.address)
        return Found([], "vendor")

    def erase(self, work: ErasureWork) -> Erased:
        request, address = work.request, work.collection.address
        instruction = build_instruction(work.collection, request.config.plan.inputs[address],
                                        request.incoming_values(address), work.fields)
        request.store.put(layout.instruction(address), instruction)
        log.info("%s: instructions prepared: %d locator field(s), %d field(s) to erase", address,
                 len(instruction["locators"]), len(instruction["erase"]))
        return Erased("instructions_prepared", detail={"locator_fields": len(instruction["locators"]),
                                                       "fields_to_erase": sorted(instruction["erase"])})


def build_instruction(
    collection: Collection, inputs: list[Input], arrived: dict[str, list[Any]],
    fields: dict[str, MaskingStrategySpec],
) -> dict[str, Any]:
    """One instruction: ``locators`` (field -> values that arrived on its edges, plus the address of an
    upstream field of the same vendor dataset, whose values only the vendor holds), ``erase`` (field path
    -> masking strategy name, from the policy's erasable fields), ``located_by_values`` and ``upstream``
    (the vendor's own collections it is located through)."""
    locators: dict[str, list[Any]] = {name: list(values) for name, values in arrived.items() if values}
    upstream: set[str] = set()
    for edge in inputs:
        if edge.source is not None and edge.source.dataset == collection.address.dataset:
            address = f"{edge.source}:{edge.source_field}"
            upstream.add(str(edge.source))
            locators.setdefault(edge.target_field, [])
            if address not in locators[edge.target_field]:
                locators[edge.target_field].append(address)
    erase = {path: spec.strategy for path, spec in fields.items()}
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
