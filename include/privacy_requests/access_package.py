"""The access package: ``{"dataset:collection": [rows]}`` with only the fields the access rules ask for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .config import PrivacyConfig
from .policy import Policy
from .request import rows_name
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
        if config.is_email(address):
            continue
        paths = [f.path for f in policy.access_fields(config.graph.collections[address])]
        if not paths:
            continue
        count = 0
        for row in store.read_rows(rows_name(address)):
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
