"""What an access package holds: per collection, the subject's rows cut down to the fields the access rules
ask for. Every format reads them from here, streamed from the request store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...model.graph import Collection
from ...model.policy import Policy
from ...model.settings import PrivacyConfig
from ...model.values import values_at
from ...store import layout
from ...store.store import RequestStore


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


@dataclass(frozen=True)
class PackagedCollection:
    """A collection the access rules return fields of, with those fields' dotted paths in declaration order."""

    collection: Collection
    paths: list[str]

    @property
    def name(self) -> str:
        """``dataset:collection``, as the JSON package and the report name it."""
        return str(self.collection.address)

    @property
    def file_name(self) -> str:
        """``dataset.collection``: a file name without ':' (which Windows refuses)."""
        return f"{self.collection.address.dataset}.{self.collection.address.collection}"

    def rows(self, store: RequestStore) -> Iterator[dict[str, Any]]:
        """The subject's rows, projected; rows with none of the fields left are not part of the package."""
        for row in store.read_rows(layout.rows(self.collection.address)):
            projected = project(row, self.paths)
            if projected:
                yield projected


def packaged_collections(config: PrivacyConfig, policy: Policy) -> list[PackagedCollection]:
    """In the traversal order, the collections an access package may hold rows of."""
    result = []
    for address in config.plan.order:
        collection = config.graph.collections[address]
        paths = [f.path for f in policy.access_fields(collection)]
        if paths:
            result.append(PackagedCollection(collection, paths))
    return result
