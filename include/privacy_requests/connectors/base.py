"""One shape for every kind of dataset (the way fides' BaseConnector does it): the collection steps call a
connector without asking whether it is a database, a vendor reached by email, or a person.

A connector that must wait for a person raises the exception its ``ask`` callable raises (Airflow parks the
task); it is called again with the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..model.graph import Collection
    from ..model.policy import MaskingStrategySpec
    from ..request.request import PrivacyRequest

log = logging.getLogger(__name__)


@dataclass
class Found:
    """What access found: rows (streamed), and a status when it is not a plain lookup."""

    rows: Iterable[dict[str, Any]]
    status: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Erased:
    """What erasure did. ``masked`` is None when nothing was changed here (a vendor's instruction only);
    otherwise the count goes into the collection's erasure ledger, so it is never done twice."""

    status: str
    masked: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    event: dict[str, Any] | None = None  # the audit event of a change: {"event": kind, **counts}


@dataclass(frozen=True)
class ErasureWork:
    """What a connector needs to erase one collection: the fields that may be erased (with strategies), the
    rows found during access, and the request (secrets, the values that arrived on the edges)."""

    request: PrivacyRequest
    collection: Collection
    fields: dict[str, MaskingStrategySpec]
    rows: Callable[[], Iterator[dict[str, Any]]]

    def without_primary_key(self) -> Erased | None:
        """The answer of a connector that erases by primary key when the collection declares none, else None."""
        if self.collection.primary_keys:
            return None
        reason = "no primary key is defined for this collection: nothing erased"
        log.warning("%s: %s", self.collection.address, reason)
        return Erased("no_primary_key", detail={"reason": reason})


class Connector(Protocol):
    """Finds the subject's records in one collection, and erases the given fields of them."""

    statements: int

    def retrieve(self, request: PrivacyRequest, collection: Collection, inputs: dict[str, list[Any]]) -> Found:
        """The records reached by ``inputs`` (field -> values; empty when no value arrived)."""
        ...

    def erase(self, work: ErasureWork) -> Erased:
        """Erase (or have erased) ``work.fields`` in the records found."""
        ...


ConnectorFor = Callable[[str], Connector]  # dataset name -> its connector
