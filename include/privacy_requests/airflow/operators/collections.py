"""One task per collection and step: access finds the subject's records, erasure erases them. The dataset's
connector (a database, a vendor, a person) is the engine's business; a person's answer comes back through
``execute_complete``."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context

from ...connectors.manual import timed_out
from ...model.graph import CollectionAddress
from ...request.asking import Answer
from ...request.request import PrivacyRequest
from ...steps.collection_steps import access_collection, erase_collection
from ...store import layout
from ..hitl import asker
from ..hooks import connectors
from .base import PrivacyRequestOperator


class CollectionOperator(PrivacyRequestOperator):
    """A task for one collection of the graph."""

    def __init__(self, *, address: CollectionAddress, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> Any:
        collection = self.privacy_config.graph.collections[self.address]
        what = "entered the records of" if self.step == layout.ACCESS else "confirmed the erasure in"
        return self._step(request, context, Answer.of(event, timed_out(what, collection, request)))

    def run(self, request: PrivacyRequest, context: Context) -> Any:
        return self._step(request, context, None)

    def _step(self, request: PrivacyRequest, context: Context, answer: Answer | None) -> Any:
        raise NotImplementedError


class AccessCollectionOperator(CollectionOperator):
    """Finds the subject's records in one collection, from the values arriving on its edges."""

    step = layout.ACCESS

    def _step(self, request: PrivacyRequest, context: Context, answer: Answer | None) -> dict[str, int]:
        outcome = access_collection(request, self.address, connectors(self.privacy_config, asker(context), answer))
        self._record_result(request, context, self.address, **outcome.as_dict())
        return {"rows": outcome.rows}


class ErasureCollectionOperator(CollectionOperator):
    """Erases the records found during access, once: masked by primary key, a vendor's instruction, or a
    person's confirmation."""

    step = layout.ERASURE

    def _step(self, request: PrivacyRequest, context: Context, answer: Answer | None) -> dict[str, Any]:
        outcome = erase_collection(request, self.address, connectors(self.privacy_config, asker(context), answer),
                                   context["ti"].try_number)
        self._record_result(request, context, self.address, **outcome.as_dict())
        return {"masked": outcome.masked}
