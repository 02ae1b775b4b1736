"""The access package: the subject's rows, only the fields the access rules ask for, in the formats the
policy names (``access_package.formats``): ``access_package.json`` (``{"dataset:collection": [rows]}``),
``access_package.html`` (a letter to the person) and ``access_package.zip`` (one CSV per collection)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from ..errors import StepSkipped
from ..request.request import PrivacyRequest
from ..steps.collection_steps import erasure_began
from ..store import layout
from ..store.store import dumps
from .package.csv_zip import write_csv_zip
from .package.html_page import html_chunks
from .package.rows import PackagedCollection, packaged_collections


class RowSource(Protocol):
    """Where a package's rows come from: the request's store, or one subject's rows of a batch."""

    def read_rows(self, name: str) -> Iterator[dict[str, Any]]: ...


def package_chunks(collections: list[PackagedCollection], store: RowSource, counts: dict[str, int]) -> Iterator[str]:
    """Stream the package as JSON text, collection by collection; fills ``counts`` as it goes."""
    yield "{"
    first = True
    for packaged in collections:
        count = 0
        for projected in packaged.rows(store):
            if count == 0:
                yield ("" if first else ",") + f"\n  {json.dumps(packaged.name)}: ["
                first = False
            yield ("," if count else "") + "\n    " + dumps(projected)
            count += 1
        if count:
            yield "\n  ]"
            counts[packaged.name] = count
    yield "\n}\n"


def write_access_package(request: PrivacyRequest, rows_from: RowSource | None = None,
                         **event: Any) -> tuple[str, dict[str, int]] | None:
    """The package's files under the request's folder: where they went and the rows per collection. None when
    they were written before erasure began: they are kept as they were, since new ones would show masked data.

    Every format streams the rows from the store (or ``rows_from``: a batch hands in one subject's rows); the
    HTML comes last, when the rows per collection are known. ``event`` adds fields to the audit event.
    """
    policy, store = request.policy, request.store
    rows: Any = rows_from or store
    if not policy.access_rules:
        raise StepSkipped(f"policy '{policy.key}' has no access rules: no access package")
    formats = policy.access_package.formats
    if erasure_began(store) and all(store.exists(layout.PACKAGE_FILES[f]) for f in formats):
        return None
    if store.exists(layout.PACKAGE_DELETED):
        return None  # it expired (package/expiry.py): a new one would show masked data, or data kept past its term
    collections = packaged_collections(request.config, policy)
    counts: dict[str, int] = {}
    if "json" in formats:
        store.write_public(layout.ACCESS_PACKAGE, package_chunks(collections, rows, counts))
    if "csv" in formats:
        with store.open_public(layout.ACCESS_PACKAGE_ZIP) as fh:
            written = write_csv_zip(fh, ((c.file_name, c.paths, c.rows(rows)) for c in collections))
        counts = {c.name: written[c.file_name] for c in collections if c.file_name in written}
    if "html" in formats:
        if not {"json", "csv"} & set(formats):
            counts = {c.name: n for c in collections if (n := sum(1 for _ in c.rows(rows)))}
        others = [layout.PACKAGE_FILES[f] for f in formats if f != "html"]
        store.write_public(layout.ACCESS_PACKAGE_HTML, html_chunks(
            request.config, rows, request.request_id, collections, counts, full_data_in=others,
            now=datetime.now(UTC)))
    files = [layout.PACKAGE_FILES[f] for f in formats]
    store.add_event("access_package_uploaded", location=str(store.base), files=files, collections=counts, **event)
    return str(store.base), counts
