"""The access package: ``{"dataset:collection": [rows]}`` with only the fields the access rules ask for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from . import layout
from .collection_steps import erasure_began
from .config import PrivacyConfig
from .errors import StepSkipped
from .policy import Policy
from .request import PrivacyRequest
from .store import RequestStore, dumps
from .values import values_at


def project(row: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Keep only the given (possibly nested) paths of a row; nulls are kept, empty branches dropped."""
    result: dict[str, Any] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        if head not in row:
            continue
        if not rest:
            result[head] = row[head]
            continue
        found = list(values_at({head: row[head]}, path))
        if found:
            node = result
            parts = path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = found[0] if len(found) == 1 else found
    return result


def package_chunks(config: PrivacyConfig, policy: Policy, store: RequestStore,
                   counts: dict[str, int]) -> Iterator[str]:
    """Stream the package as JSON text, collection by collection; fills ``counts`` as it goes."""
    yield "{"
    first = True
    for address in config.plan.order:
        paths = [f.path for f in policy.access_fields(config.graph.collections[address])]
        if not paths:
            continue
        count = 0
        for row in store.read_rows(layout.rows(address)):
            projected = project(row, paths)
            if not projected:
                continue
            if count == 0:
                yield ("" if first else ",") + f"\n  {json.dumps(str(address))}: ["
                first = False
            yield ("," if count else "") + "\n    " + dumps(projected)
            count += 1
        if count:
            yield "\n  ]"
            counts[str(address)] = count
    yield "\n}\n"


def write_access_package(request: PrivacyRequest) -> tuple[str, dict[str, int]] | None:
    """``access_package.json`` for an access policy: where it went and the rows per collection. None when it
    was written before erasure began: it is kept as it was, since a new one would show masked data."""
    policy = request.policy
    if not policy.access_rules:
        raise StepSkipped(f"policy '{policy.key}' has no access rules: no access package")
    if erasure_began(request.store) and request.store.exists(layout.ACCESS_PACKAGE):
        return None
    counts: dict[str, int] = {}
    path = request.store.write_public(layout.ACCESS_PACKAGE,
                                      package_chunks(request.config, policy, request.store, counts))
    request.store.add_event("access_package_uploaded", location=str(path), collections=counts)
    return str(path), counts
