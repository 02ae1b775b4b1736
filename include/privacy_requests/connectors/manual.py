"""Manual collections: nobody can query them (a paper archive, a system without an API), so a person looks
the subject up and enters the records found, in a form built from the collection's fields; at erasure the
person erases the listed fields by hand and confirms how many records they changed.

The entered records are checked against the collection before anything is stored (the REST API checks only
the chosen option): unknown fields and values that do not fit a field's declared type are refused, naming
the record and the field.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import Param

from ..errors import RequestError
from ..graph import Collection
from ..policy import MaskingStrategySpec

ROWS = "rows"
RECORDS_ERASED = "records_erased"
_JSON_TYPES = {"integer": "integer", "float": "number", "boolean": "boolean", "string": "string"}


def entry_form(collection: Collection) -> dict[str, Param]:
    """One form field: the list of records found, each an object with the collection's top-level fields."""
    properties: dict[str, Any] = {}
    for name in collection.columns:
        json_type = _JSON_TYPES.get(_base_type(collection, name))
        properties[name] = {"type": [json_type, "null"]} if json_type else {}
    return {ROWS: Param(
        [], type="array", items={"type": "object", "properties": properties, "additionalProperties": False},
        title=f"Records found in {collection.address}",
        description=f"One object per record, for example [{_example(collection)}]; leave out what the record "
                    "does not show. An empty list [] if there is none.")}


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
                row[name] = _typed(value, data_type)
            except ValueError:
                raise RequestError(f"{where}: record {number}, field '{name}': {json.dumps(value)[:40]} is not "
                                   f"a valid {data_type}") from None
        rows.append(row)
    return rows


def _typed(value: Any, data_type: str) -> Any:
    """The value as the declared type, strictly: 3.7 is no integer, "abc" no boolean, a list no string."""
    if value is None or not data_type:
        return value
    if data_type.endswith("[]"):
        if not isinstance(value, list):
            raise ValueError
        return [_typed(item, data_type.removesuffix("[]")) for item in value]
    if isinstance(value, (dict, list)):
        raise ValueError
    if data_type == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ValueError
    if isinstance(value, bool):
        raise ValueError
    if data_type == "integer":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value) if not isinstance(value, str) else int(value.strip())
    if data_type == "float":
        return float(value)
    return str(value)


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


def erasure_form(found: int) -> dict[str, Param]:
    return {RECORDS_ERASED: Param(found, type="integer", minimum=0, title="Records erased",
                                  description="How many records you changed.")}


def _how(spec: MaskingStrategySpec) -> str:
    if spec.strategy == "null_rewrite":
        return "clear it (empty or null)"
    if spec.strategy == "string_rewrite":
        return f"replace it with \"{spec.configuration.get('rewrite_value', '')}\""
    return f"overwrite it so that it no longer shows the value ({spec.strategy})"
