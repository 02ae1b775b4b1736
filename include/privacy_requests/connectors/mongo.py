"""MongoDB connector: documents found with one ``find`` on (nested) fields, masked field by field with
``update_one`` + ``arrayFilters`` (only the subject's elements of an array), or deleted; both proved by
reading the documents back.

Framework-free: it takes a pymongo ``Database`` (or a callable that makes one); the Airflow wing builds it
from the MongoDB provider's hook. Documents are found and changed by ``_id``: an ``ObjectId`` travels through
the request store as its hex string, so a key is looked up both as found and as an ``ObjectId``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from bson import ObjectId
from pymongo import DeleteMany, UpdateOne
from pymongo.database import Database
from pymongo.errors import AutoReconnect, ConnectionFailure, PyMongoError

from ..errors import DataSourceError, RequestError, TransientError
from ..model.graph import Collection
from ..model.masking import FieldMask, Masker
from ..model.policy import deletes
from ..model.values import in_chunks
from ..request.request import PrivacyRequest
from ..store import layout
from .base import Erased, ErasureWork, Found
from .mongo_paths import Target, targets, value_at
from .verification import holds_masked_value

log = logging.getLogger(__name__)

WRITE_BATCH = 1000  # documents per bulk_write (one round trip) and per read back


class MongoConnector:
    """Finds, masks and deletes the documents of one MongoDB database; counts the round trips it makes."""

    def __init__(self, database: Database | Callable[[], Database]) -> None:
        self._database = database
        self.statements = 0

    @property
    def database(self) -> Database:
        if not isinstance(self._database, Database):
            self._database = self._database()
        return self._database

    def retrieve(self, request: PrivacyRequest, collection: Collection, inputs: dict[str, list[Any]]) -> Found:
        return Found(self.find(collection, inputs))

    def find(self, collection: Collection, inputs: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
        """Documents where any input path (nested, through arrays) holds any of its values; declared top-level
        fields only. No values, no query."""
        clauses = [{path: {"$in": _lookup_values(values)}} for path, values in inputs.items() if values]
        if not clauses:
            return
        projection = dict.fromkeys(collection.columns, 1)
        try:
            self.statements += 1
            for document in self.database[collection.address.collection].find({"$or": clauses}, projection):
                yield _plain(document)
        except PyMongoError as exc:
            raise _classify(exc, collection) from exc

    def erase(self, work: ErasureWork) -> Erased:
        collection = work.collection
        refused = work.without_primary_key()
        if refused is not None:
            return refused
        if deletes(work.fields):
            return self.delete(work)
        masks = field_masks(work)
        if not masks:
            return Erased("nothing_to_erase")
        inputs = _inputs(work)
        matched = [i.target_field for i in work.request.config.plan.inputs[collection.address]]
        masked = verified = 0
        try:
            for batch in in_chunks(work.rows(), WRITE_BATCH):
                planned = [(row, _document_targets(row, masks, inputs, collection, matched)) for row in batch]
                operations = [op for row, found in planned if (op := _update(row, found, masks))]
                if operations:
                    self.statements += 1
                    masked += self.database[collection.address.collection].bulk_write(
                        operations, ordered=False).matched_count
                verified += self._verify(collection, masks, planned)
        except PyMongoError as exc:
            raise _classify(exc, collection) from exc
        work.request.store.add_event("erasure_verified", collection=str(collection.address), rows=verified,
                                     fields=len(masks))
        return Erased("complete", masked=masked, detail={"fields": sorted(masks), "verified": verified},
                      event={"event": "collection_masked", "rows": masked, "fields": sorted(masks)})

    def _verify(self, collection: Collection, masks: dict[str, FieldMask],
                planned: list[tuple[dict[str, Any], list[tuple[str, Target]]]]) -> int:
        """Read the batch's documents back by _id: every target must hold its masked value."""
        keys = [row["_id"] for row, found in planned if found]
        if not keys:
            return 0
        self.statements += 1
        current = {str(d["_id"]): d for d in self.database[collection.address.collection].find(_id_in(keys))}
        wrong = 0
        for row, found in planned:
            now = current.get(str(row["_id"]))
            if found and (now is None or not all(
                    holds_masked_value(masks[name], t.original, value_at(now, t.position)[1]) for name, t in found)):
                wrong += 1
        if wrong:
            raise DataSourceError(f"{collection.address}: erasure not verified: {wrong} document(s) read back do "
                                  "not hold their masked values (a concurrent write?); fix the cause and clear this "
                                  "task: masking is repeated from the values found")
        return sum(1 for _, found in planned if found)

    def delete(self, work: ErasureWork) -> Erased:
        """Delete the documents found by _id (one ``delete_many`` per batch), then count them back."""
        collection = work.collection
        table = collection.address.collection
        deleted = left = 0
        try:
            for batch in in_chunks(work.rows(), WRITE_BATCH):
                keys = [row["_id"] for row in batch]
                self.statements += 2
                deleted += self.database[table].bulk_write([DeleteMany(_id_in(keys))]).deleted_count
                left += self.database[table].count_documents(_id_in(keys))
        except PyMongoError as exc:
            raise _classify(exc, collection) from exc
        if left:
            raise DataSourceError(f"{collection.address}: erasure not verified: {left} deleted document(s) are still "
                                  "there; fix the cause and clear this task: it deletes what is left")
        work.request.store.add_event("erasure_verified", collection=str(collection.address), rows=deleted,
                                     action="delete")
        return Erased("complete", masked=deleted, detail={"action": "delete", "verified": deleted},
                      event={"event": "collection_deleted", "rows": deleted})


def field_masks(work: ErasureWork) -> dict[str, FieldMask]:
    secrets = work.request.store.get(layout.SECRETS)
    if secrets is None:
        raise RequestError("masking secrets are missing: clear validate_request to make them")
    return {path: FieldMask(Masker(spec.strategy, spec.configuration, secrets), work.collection.field(path).length)
            for path, spec in work.fields.items()}


def _inputs(work: ErasureWork) -> dict[str, list[Any]] | None:
    """The values that reached the collection (they say which array elements are the subject's); None in a
    batch, whose values are kept per subject elsewhere."""
    try:
        return work.request.incoming_values(work.collection.address)
    except RequestError:
        return None


def _document_targets(row: dict[str, Any], masks: dict[str, FieldMask], inputs: dict[str, list[Any]] | None,
                      collection: Collection, matched: list[str]) -> list[tuple[str, Target]]:
    """The values to mask in one document; ``matched`` are the paths values arrive on (in a batch, whose values
    are not at hand, an array on one of those paths cannot be told apart per subject)."""
    ident: dict[tuple[Any, ...], str] = {}
    result = []
    for name, mask in masks.items():
        found, why = targets(row, name, inputs or {}, ident)
        if why:
            log.warning("%s: %s", collection.address, why)
        for target in found:
            head = target.path.split(".$[")[0]
            if inputs is None and "$[" in target.path and any(p == head or p.startswith(head + ".") for p in matched):
                raise DataSourceError(f"{collection.address}: '{name}' is in an array matched by the request's "
                                      "values: a batch cannot mask it yet (run single requests for this dataset)")
            if target.original is None and mask.per_row:
                continue  # a value found null stays as it is
            result.append((name, target))
    return result


def _update(row: dict[str, Any], found: list[tuple[str, Target]], masks: dict[str, FieldMask]) -> UpdateOne | None:
    if not found:
        return None
    sets: dict[str, Any] = {}
    filters: list[dict[str, Any]] = []
    for name, target in found:
        if target.path not in sets:
            sets[target.path] = masks[name].apply(target.original)
            filters += [f for f in target.filters if f not in filters]
    return UpdateOne(_id_in([row["_id"]]), {"$set": sets}, array_filters=filters or None)


def _id_in(keys: list[Any]) -> dict[str, Any]:
    values: list[Any] = []
    for key in keys:
        values.append(key)
        if isinstance(key, str) and ObjectId.is_valid(key):
            values.append(ObjectId(key))
    return {"_id": {"$in": values}}


def _lookup_values(values: list[Any]) -> list[Any]:
    """The values as given, and an ObjectId for a string that is one (a key that travelled as text)."""
    return [*values, *(ObjectId(v) for v in values if isinstance(v, str) and len(v) == 24 and ObjectId.is_valid(v))]


def _plain(value: Any) -> Any:
    """A document as JSON can hold it: ObjectIds as their hex strings."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _classify(exc: PyMongoError, collection: Collection) -> Exception:
    """Connection trouble is transient; anything else is not. The server's message can quote values, so only
    the error's type and code are named."""
    message = f"{collection.address}: {type(exc).__name__}"
    if isinstance(exc, (AutoReconnect, ConnectionFailure)):
        return TransientError(message)
    code = getattr(exc, "code", None)
    return DataSourceError(message + (f" (code {code})" if code is not None else ""))
