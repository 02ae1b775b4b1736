"""Manual collections: nobody can query them (a paper archive, a system without an API), so a person looks
the subject up and enters the records found, in a form built from the collection's fields; at erasure the
person erases the listed fields by hand and confirms how many records they changed.

The entered records are checked against the collection before anything is stored (the REST API checks only
the chosen option): unknown fields and values that do not fit a field's declared type are refused, naming
the record and the field.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..errors import RequestError
from ..model.graph import Collection
from ..model.policy import MaskingStrategySpec
from ..model.values import cast
from ..request.asking import CONFIRM, Answer, Ask, Question, duration
from ..request.request import PrivacyRequest
from .base import Erased, ErasureWork, Found

log = logging.getLogger(__name__)
ROWS = "rows"
RECORDS_ERASED = "records_erased"
_JSON_TYPES = {"integer": "integer", "float": "number", "boolean": "boolean", "string": "string"}


class ManualConnector:
    """Asks a person through ``ask`` (which parks the task); called again with the person's ``answer``."""

    statements = 0

    def __init__(self, *, ask: Ask, answer: Answer | None = None) -> None:
        self.ask = ask
        self.answer = answer

    def retrieve(self, request: PrivacyRequest, collection: Collection, inputs: dict[str, list[Any]]) -> Found:
        if not inputs:
            return Found([])  # nobody is asked when no value reaches the collection
        if request.conf.dry_run:
            # A dry run asks nobody (the person would search an archive for a request that changes nothing): the
            # look-up is planned, with the fields and how many values would be looked up (never the values),
            # and the collection finds nothing, so what a person would enter is not in the plan.
            if not any(e["event"] == "manual_lookup_planned" and e["collection"] == str(collection.address)
                       for e in request.store.events()):  # a cleared task does not plan twice
                request.store.add_event("manual_lookup_planned", collection=str(collection.address),
                                        values={f: len(v) for f, v in sorted(inputs.items())})
            log.info("Dry run: the look-up in %s is planned; nobody is asked", collection.address)
            return Found([], "planned", {"asked": False})
        if self.answer is None:
            self.ask(Question(subject=f"Look up privacy request {request.request_id} in {collection.address}",
                              body=access_question(collection, inputs), options=[CONFIRM],
                              timeout=request.config.settings.wait_timeout, form=entry_form(collection)))
        if ROWS not in self.answer.values:
            raise RequestError(f"the answer for {collection.address} has no 'rows' (a list of records, [] for "
                               "none); clear this task to ask again")
        rows = check_rows(collection, self.answer.values[ROWS])
        request.store.add_event("manual_entry", collection=str(collection.address), rows=len(rows),
                                by=self.answer.by)
        log.info("%s: %d record(s) entered by %s", collection.address, len(rows), self.answer.by)
        return Found(rows, "manual_entry", {"entered_by": self.answer.by})

    def erase(self, work: ErasureWork) -> Erased:
        collection, fields = work.collection, work.fields
        if not fields:
            return Erased("nothing_to_erase")
        rows = list(work.rows())
        if not rows:
            return Erased("nothing_found")
        if self.answer is None:
            self.ask(Question(subject=f"Erase privacy request {work.request.request_id} in {collection.address}",
                              body=erasure_question(collection, rows, fields), options=[CONFIRM],
                              timeout=work.request.config.settings.wait_timeout, form=erasure_form(len(rows))))
        erased = self.answer.values.get(RECORDS_ERASED)
        if not isinstance(erased, int) or isinstance(erased, bool) or erased < 0:
            raise RequestError(f"records_erased for {collection.address} must be a whole number of at least 0, "
                               f"not {erased!r}; clear this task to ask again")
        log.info("%s: %d record(s) erased by hand, confirmed by %s", collection.address, erased, self.answer.by)
        return Erased("complete", masked=erased, detail={"fields": sorted(fields), "confirmed_by": self.answer.by},
                      event={"event": "manual_erasure_confirmed", "records": erased, "fields": sorted(fields),
                             "by": self.answer.by})


def timed_out(what: str, collection: Collection, request: PrivacyRequest) -> str:
    """The error when nobody answered in time."""
    return (f"nobody {what} {collection.address} within {duration(request.config.settings.wait_timeout)}; "
            "clear this task to ask again")


def entry_form(collection: Collection) -> dict[str, dict[str, Any]]:
    """One form field: the list of records found, each an object with the collection's top-level fields."""
    properties: dict[str, Any] = {}
    for name in collection.columns:
        json_type = _JSON_TYPES.get(_base_type(collection, name))
        properties[name] = {"type": [json_type, "null"]} if json_type else {}
    return {ROWS: {
        "default": [], "type": "array",
        "items": {"type": "object", "properties": properties, "additionalProperties": False},
        "title": f"Records found in {collection.address}",
        "description": f"One object per record, for example [{_example(collection)}]; leave out what the record "
                       "does not show. An empty list [] if there is none."}}


def _example(collection: Collection) -> str:
    """A record to copy: every field with a placeholder of its type."""
    placeholders: dict[str, Any] = {"integer": 0, "float": 0.0, "boolean": False}
    return json.dumps({name: placeholders.get(_base_type(collection, name), "") for name in collection.columns})


def _base_type(collection: Collection, name: str) -> str:
    spec = collection.field(name)
    return (spec.data_type or "").removesuffix("[]") if spec and not spec.is_object else ""


def check_rows(collection: Collection, answer: Any) -> list[dict[str, Any]]:
    """The entered records, with values cast to the declared field types; bad input raises RequestError."""
    where = f"the records entered for {collection.address}"
    if not isinstance(answer, list):
        raise RequestError(f"{where} must be a list of objects, not {type(answer).__name__}")
    known = collection.columns
    rows = []
    for number, record in enumerate(answer, start=1):
        if not isinstance(record, dict):
            raise RequestError(f"{where}: record {number} is not an object")
        unknown = sorted(set(record) - set(known))
        if unknown:
            raise RequestError(f"{where}: record {number} has field(s) the collection does not have: "
                               f"{', '.join(unknown)} (fields: {', '.join(known)})")
        row = {}
        for name, value in record.items():
            spec = collection.field(name)
            data_type = (spec.data_type or "") if spec and not spec.is_object else ""
            try:
                row[name] = cast(value, data_type, strict=True)
            except ValueError as exc:
                raise RequestError(f"{where}: record {number}, field '{name}': the value is not a valid "
                                   f"{data_type} ({exc})") from None
        rows.append(row)
    return rows


def access_question(collection: Collection, locators: dict[str, list[Any]]) -> str:
    """Markdown: where to look and with which values."""
    lines = [f"Look up the data subject in **{collection.address}** with these values, then enter every "
             "record found (an empty list if none):", ""]
    lines += [f"- `{name}`: {', '.join(str(v) for v in values)}" for name, values in sorted(locators.items())]
    lines += ["", f"Fields: {', '.join(f'`{n}`' for n in collection.columns)}."]
    return "\n".join(lines)


def erasure_question(collection: Collection, rows: list[dict[str, Any]],
                     fields: dict[str, MaskingStrategySpec]) -> str:
    """Markdown: which records to change and how; the person confirms how many records they erased."""
    keys = [f.path for f in collection.primary_keys] or collection.columns
    lines = [f"Erase these fields in the {len(rows)} record(s) of **{collection.address}** entered during "
             "access, then confirm how many records you changed:", ""]
    lines += [f"- `{path}`: {_how(spec)}" for path, spec in sorted(fields.items())]
    lines += ["", "Records:"]
    lines += ["- " + ", ".join(f"{k} = {row.get(k)}" for k in keys) for row in rows]
    return "\n".join(lines)


def erasure_form(found: int) -> dict[str, dict[str, Any]]:
    return {RECORDS_ERASED: {"default": found, "type": "integer", "minimum": 0, "title": "Records erased",
                             "description": "How many records you changed."}}


def _how(spec: MaskingStrategySpec) -> str:
    if spec.deletes:
        return "delete the whole record"
    if spec.strategy == "null_rewrite":
        return "clear it (empty or null)"
    if spec.strategy == "string_rewrite":
        return f"replace it with \"{spec.configuration.get('rewrite_value', '')}\""
    return f"overwrite it so that it no longer shows the value ({spec.strategy})"
