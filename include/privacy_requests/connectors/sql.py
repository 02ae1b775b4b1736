"""SQL connector over SQLAlchemy Core: parameterized IN queries to find rows, set-based UPDATEs to mask.

Framework-free: it takes a SQLAlchemy Engine; the Airflow wing builds one from the connection's hook.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, column, or_, select, table, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..errors import DataSourceError, RequestError, TransientError
from ..model.graph import Collection
from ..model.masking import FieldMask, Masker, writes_text
from ..model.policy import MaskingStrategySpec, deletes
from ..model.values import in_chunks, rows_per_statement
from ..request.request import PrivacyRequest
from ..store import layout
from . import deletion, verification
from .base import Erased, ErasureWork, Found
from .dialects import snowflake_transient
from .pair_update import can_check, execute, pair_check, pair_update

log = logging.getLogger(__name__)

QUERY_VALUES_LIMIT = 5000
UPDATE_BATCH = 5000  # rows per UPDATE at most (fewer where a row binds many parameters)
FETCH_CHUNK = 1000


class SqlConnector:
    """Queries and masks the collections of one database; counts the statements it issues."""

    def __init__(self, engine: Engine | Callable[[], Engine]) -> None:
        self._engine = engine
        self.statements = 0

    @property
    def engine(self) -> Engine:
        """The engine, made on first use: a step with nothing to query (no input, no primary key, nothing to
        erase) never looks its connection up."""
        if not isinstance(self._engine, Engine):
            self._engine = self._engine()
        return self._engine

    def retrieve(self, request: PrivacyRequest, collection: Collection, inputs: dict[str, list[Any]]) -> Found:
        return Found(self.select_rows(collection, inputs))

    def erase(self, work: ErasureWork) -> Erased:
        """Mask by primary key; fields a SQL UPDATE cannot write as asked are logged and left out."""
        collection = work.collection
        refused = work.without_primary_key()
        if refused is not None:
            return refused
        if deletes(work.fields):
            return self.delete(work)
        masks = field_masks(work)
        if not masks:
            log.info("%s: no field matches the erasure targets", collection.address)
            return Erased("nothing_to_erase")
        masked, checks = self.mask_left(work, masks)
        verified = self.verify(work, masks, masked, checks)
        return Erased("complete", masked=verified, detail={"fields": sorted(masks), "verified": verified},
                      event={"event": "collection_masked", "rows": masked, "fields": sorted(masks)})

    def delete(self, work: ErasureWork) -> Erased:
        """Delete the rows found by primary key (one transaction), then count them back: none may be left.

        A try whose proof failed records what it deleted; the next try deletes what is left and adds it up."""
        collection, store = work.collection, work.request.store
        earlier = (store.get(layout.unverified(collection.address)) or {}).get("deleted", 0)
        try:
            with self.engine.begin() as conn:
                deleted, statements = deletion.delete_rows(conn, collection, work.rows())
            self.statements += statements
            proof = deletion.count_present(self.engine, collection, work.rows())
        except IntegrityError as exc:
            raise DataSourceError(
                f"{classify_error(exc, collection)}: the database refused the delete, a foreign key still references "
                "a row of it; nothing was deleted in this collection: erase the referencing rows first (the "
                "preflight of validate_request names the key), then clear this task") from exc
        except DBAPIError as exc:
            raise classify_error(exc, collection) from exc
        self.statements += proof.statements
        deleted += earlier
        if proof.present:
            store.put(layout.unverified(collection.address), {"rows": proof.present, "deleted": deleted})
            raise DataSourceError(
                f"{collection.address}: erasure not verified: {proof.present} of {proof.keys} deleted row(s) are "
                "still there when counted by primary key (a trigger, a replica or a concurrent write?); fix the "
                "cause and clear this task: it deletes what is left")
        store.delete(layout.unverified(collection.address))
        store.add_event("erasure_verified", collection=str(collection.address), rows=proof.gone, action="delete")
        log.info("%s: %d row(s) deleted; erasure verified, none of the %d primary key(s) is left",
                 collection.address, deleted, proof.keys)
        return Erased("complete", masked=deleted, detail={"action": "delete", "verified": proof.gone},
                      event={"event": "collection_deleted", "rows": deleted})

    def mask_left(self, work: ErasureWork, masks: dict[str, FieldMask]) -> tuple[int, verification.Checks | None]:
        """Mask the rows found; after a try whose masking did not verify, only the fields still unmasked (a
        value masked already is never masked twice). Returns the rows this try masked plus those found
        masked already, and the counting statements that prove it (None: read the rows back instead, after a
        try that did not verify, or on a dialect without them)."""
        collection = work.collection
        if not work.request.store.exists(layout.unverified(collection.address)):
            checks = verification.Checks(0) if can_check(self.engine.dialect) else None
            return self.mask(collection, work.rows(), masks, checks), checks
        try:
            before = verification.verify(self.engine, collection, work.rows(), masks)
        except DBAPIError as exc:
            raise classify_error(exc, collection) from exc
        self.statements += before.statements
        masked = sum(self.mask(collection, iter(rows), {f: masks[f] for f in fields})
                     for fields, rows in verification.by_fields_left(before).items())
        log.info("%s: %d row(s) were masked already, %d masked now", collection.address, before.verified, masked)
        return before.verified + masked, None

    def verify(self, work: ErasureWork, masks: dict[str, FieldMask], masked: int,
               checks: verification.Checks | None = None) -> int:
        """Proof of erasure (verification.py): every masked row holds its masked values, and as many rows are
        there as were masked; else the task fails, naming fields and counts only, and its next try masks what
        is left. With ``checks``, one counting statement per chunk, and a read-back of a chunk only where its
        count is not zero (to name the fields); without, every row is read back."""
        collection, store = work.collection, work.request.store
        try:
            if checks is None:
                proof = verification.verify(self.engine, collection, work.rows(), masks)
                named = verification.fields_left(proof)
            else:
                proof = verification.count(self.engine, checks)
                named = {}
                if proof.failed_chunks:
                    rows = verification.rows_of_chunks(work.rows(), checks.size, proof.failed_chunks)
                    read = verification.verify(self.engine, collection, rows, masks)
                    proof.statements += read.statements
                    named = verification.fields_left(read)
        except DBAPIError as exc:
            raise classify_error(exc, collection) from exc
        self.statements += proof.statements
        if proof.unverified or proof.present != masked:
            store.put(layout.unverified(collection.address), {"rows": proof.unverified,
                                                               "missing": max(masked - proof.present, 0)})
            fields = (" (" + ", ".join(f"{name}: {rows} row(s)" for name, rows in named.items()) + ")"
                      if named else "")
            raise DataSourceError(
                f"{collection.address}: erasure not verified: {proof.unverified} of {proof.present} masked row(s) "
                f"do not hold their masked value{fields} and {max(masked - proof.present, 0)} masked row(s) are "
                f"gone (a trigger, a replica or a concurrent write?); fix the cause and clear this task: it masks "
                "only what is left")
        store.delete(layout.unverified(collection.address))
        store.add_event("erasure_verified", collection=str(collection.address), rows=proof.verified,
                        fields=len(masks))
        log.info("%s: erasure verified, %d row(s) read back hold their masked values", collection.address,
                 proof.verified)
        return proof.verified

    def select_rows(self, collection: Collection, inputs: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
        """Rows where any input field holds any of its values (ORed), streamed.

        One statement, unless the values exceed QUERY_VALUES_LIMIT; then they go in slices and rows
        matched by more than one slice are returned once.
        """
        if not any(inputs.values()):
            return  # no values, no query: an empty OR would select the whole table
        tbl = table(collection.address.collection, *(column(c) for c in collection.columns))
        slices = list(_slices(inputs))
        # Slices can overlap (two fields, or values a case-insensitive collation treats as equal).
        seen: set[str] | None = set() if len(slices) > 1 else None
        pk_columns = [f.column for f in collection.primary_keys] or collection.columns
        try:
            with self.engine.connect() as conn:
                for part in slices:
                    stmt = select(*tbl.c).where(or_(*(tbl.c[f.split(".")[0]].in_(v) for f, v in part.items())))
                    self.statements += 1
                    result = conn.execution_options(stream_results=True, yield_per=FETCH_CHUNK).execute(stmt)
                    for row in result.mappings():
                        record = dict(row)
                        if seen is not None:
                            key = json.dumps([record[c] for c in pk_columns], default=str)
                            if key in seen:
                                continue
                            seen.add(key)
                        yield record
        except DBAPIError as exc:
            raise classify_error(exc, collection) from exc

    def mask(self, collection: Collection, rows: Iterator[dict[str, Any]], masks: dict[str, FieldMask],
             checks: verification.Checks | None = None) -> int:
        """Mask found rows by primary key, one UPDATE per batch, all in one transaction.

        Constant masks set every row of a batch alike (``WHERE pk IN (...)``). Per-row masks (hash, hmac ...)
        join the table with the batch's (primary key, masked value) pairs: each row is masked from the value
        found during access, whatever the collation; a value found NULL stays as it is. With ``checks``, each
        batch's counting statement over the same pairs is kept there, to prove the masking once committed.
        """
        keys = [f.column for f in collection.primary_keys]
        tbl = table(collection.address.collection, *(column(c) for c in {*keys, *masks}))
        per_row = [c for c, m in masks.items() if m.per_row]
        constants = {c: m.apply(None) for c, m in masks.items() if not m.per_row}
        nulls = tuple(c for c, v in constants.items() if v is None)
        values = {c: v for c, v in constants.items() if v is not None}
        total = 0
        try:
            with self.engine.begin() as conn:
                size = rows_per_statement(len(keys) + len(per_row), UPDATE_BATCH)
                if checks is not None:
                    checks.size = size
                for batch in in_chunks(rows, size):
                    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
                    for row in batch:  # a key listed twice is masked once, from its first row
                        by_key.setdefault(tuple(row[k] for k in keys), row)
                    pairs = [(key, [None if row.get(c) is None else masks[c].apply(row[c]) for c in per_row])
                             for key, row in by_key.items()]
                    if checks is not None:
                        check = pair_check(conn.dialect, collection.address.collection, tuple(keys), tuple(per_row),
                                           nulls, tuple(values), len(pairs))
                        checks.statements.append((check.sql, check.parameters(pairs, list(values.values()))))
                    if per_row:
                        shape = pair_update(conn.dialect, collection.address.collection, tuple(keys),
                                            tuple(per_row), tuple(constants), len(pairs))
                        self.statements += 1
                        result = execute(conn, shape.sql, shape.parameters(pairs, list(constants.values())))
                    else:
                        self.statements += 1
                        result = conn.execute(update(tbl).where(_key_in(tbl, keys, list(by_key))).values(constants))
                    changed = result.rowcount
                    if changed > len(by_key):  # raising here rolls the whole collection back
                        raise DataSourceError(f"{collection.address}: the primary key ({', '.join(keys)}) is not "
                                              f"unique: {changed} rows matched {len(by_key)} keys; "
                                              "nothing was masked")
                    total += changed
        except DBAPIError as exc:
            raise classify_error(exc, collection) from exc
        return total


def written_fields(collection: Collection, fields: dict[str, MaskingStrategySpec],
                   on_skip: Callable[[str, str], None] | None = None) -> dict[str, MaskingStrategySpec]:
    """Of the fields that may be erased, those an UPDATE writes: top-level columns only, and a text-writing
    strategy only where the field is not declared with another type. The preflight checks exactly these."""
    chosen = {}
    for path, spec in fields.items():
        fld = collection.field(path)
        assert fld is not None
        skip = None
        if "." in path:
            skip = "nested field (SQL erasure masks top-level columns only)"
        elif writes_text(spec.strategy) and fld.data_type not in (None, "string"):
            skip = f"strategy '{spec.strategy}' writes text, the field is '{fld.data_type}'"
        if skip is None:
            chosen[path] = spec
        elif on_skip:
            on_skip(path, skip)
    return chosen


def field_masks(work: ErasureWork) -> dict[str, FieldMask]:
    """The columns to mask, each with its strategy bound to the request's secrets and the field's length."""
    chosen = written_fields(work.collection, work.fields,
                            lambda path, why: log.warning("%s: not masking %s: %s", work.collection.address, path, why))
    if not chosen:
        return {}
    secrets = work.request.store.get(layout.SECRETS)
    if secrets is None:
        raise RequestError("masking secrets are missing: clear validate_request to make them")
    return {path: FieldMask(Masker(spec.strategy, spec.configuration, secrets), work.collection.field(path).length)
            for path, spec in chosen.items()}


def _key_in(tbl: Any, keys: list[str], key_values: list[tuple[Any, ...]]) -> Any:
    if len(keys) == 1:
        return tbl.c[keys[0]].in_([v[0] for v in key_values])
    return tuple_(*(tbl.c[k] for k in keys)).in_(key_values)


def _slices(inputs: dict[str, list[Any]]) -> Iterator[dict[str, list[Any]]]:
    if sum(len(v) for v in inputs.values()) <= QUERY_VALUES_LIMIT:
        yield inputs
        return
    for name, values in inputs.items():
        for start in range(0, len(values), QUERY_VALUES_LIMIT):
            yield {name: values[start : start + QUERY_VALUES_LIMIT]}


def classify_error(exc: DBAPIError, collection: Collection) -> Exception:
    """Connection trouble is transient (retry); anything else (missing table, bad column) is not.

    The database's message can quote values (``invalid input syntax for type integer: "jane@…"``), so
    quoted text is redacted unless it names the collection or one of its columns.
    """
    first_line = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
    known = {collection.address.collection, *collection.columns}
    scrubbed = _QUOTED.sub(lambda m: m[0] if m[2] in known else f"{m[1]}***{m[1]}", first_line)
    message = f"{collection.address}: {type(exc.orig).__name__}: {scrubbed}"
    if exc.connection_invalidated or _is_connection_problem(exc.orig):
        return TransientError(message)
    return DataSourceError(message)


_QUOTED = re.compile(r"""(['"`])(.*?)\1""")
# SQLSTATE classes and MySQL client/server codes that mean "could not talk to the server (now)".
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "40001", "40P01")
_TRANSIENT_MYSQL_CODES = {1040, 1205, 1213, 2002, 2003, 2005, 2006, 2013, 2055}
# psycopg 3 reports a failed connect as "connection failed: ..." with no SQLSTATE.
_TRANSIENT_MESSAGES = ("database is locked", "unable to open database file", "connection to server",
                       "could not connect to server", "server closed the connection", "connection failed")


def _is_connection_problem(orig: BaseException | None) -> bool:
    if orig is None:
        return False
    snowflake = snowflake_transient(orig)
    if snowflake is not None:
        return snowflake
    state = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if state:
        return str(state).startswith(_TRANSIENT_SQLSTATES)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _TRANSIENT_MYSQL_CODES
    return str(orig).lower().startswith(_TRANSIENT_MESSAGES)
