"""The plan of a dry run: what erasure would do to one collection, computed from the rows access found and
never from the database, so a dry run cannot change (or lock) anything.

Per collection: the rows that would be masked and, per field, the strategy and how many values it would
change; counts only, so the plan goes into report.json. After a real run that names the dry run it follows
(``after_dry_run``), ``compare`` sets the plan against what was done.
"""

from __future__ import annotations

from typing import Any

from ..connectors.base import Connector, ErasureWork
from ..connectors.sql import field_masks, written_fields
from ..model.masking import FieldMask

PLANNED = "planned"  # the erasure status of a collection in a dry run


def would_change(mask: FieldMask, value: Any) -> bool:
    """Whether masking would change this value, as SqlConnector.mask writes it: a per-row strategy leaves NULL
    as it is; a constant (null_rewrite, string_rewrite) is written to every row, changing those that differ.
    A random string always differs."""
    if mask.per_row:
        return value is not None and (mask.masker.strategy == "random_string_rewrite" or mask.apply(value) != value)
    return mask.apply(None) != value


def plan_erasure(work: ErasureWork, kind: str, connector: Connector) -> dict[str, Any]:
    """What erasing ``work`` would do. A vendor's instruction is recorded (it is only written to the request's
    store) so that its email can be rendered; a manual collection's person is not asked."""
    fields = {path: {"strategy": spec.strategy} for path, spec in sorted(work.fields.items())}
    if kind == "email":
        connector.erase(work)
        return {"rows": None, "fields": fields, "by": "the vendor, from the email rendered for this request"}
    if kind == "saas":  # the requests it would send (method, path template, fields); none is sent
        return connector.plan(work)  # type: ignore[attr-defined]
    if kind == "manual":
        return {"rows": None, "fields": fields, "by": "a person, who would be asked to confirm"}
    if not work.collection.primary_keys:
        return {"rows": 0, "fields": {}, "skipped": {"*": "no primary key: nothing would be erased"}}
    skipped: dict[str, str] = {}
    written_fields(work.collection, work.fields, lambda path, why: skipped.__setitem__(path, why))
    masks = field_masks(work)
    changes = dict.fromkeys(masks, 0)
    rows = 0
    for row in work.rows():
        rows += 1
        for name, mask in masks.items():
            changes[name] += would_change(mask, row.get(name))
    planned = {name: {"strategy": work.fields[name].strategy, "values_to_change": changes[name]}
               for name in sorted(masks)}
    return {"rows": rows if masks else 0, "fields": planned, "skipped": skipped}


def compare(plan_report: dict[str, Any], report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per collection of a real run, the rows its dry run planned to mask and the rows it masked."""
    planned = {c["collection"]: c["erasure"].get("plan") or {} for c in plan_report.get("collections", [])}
    result = []
    for item in report.get("collections", []):
        name = item["collection"]
        plan = planned.get(name, {})
        masked = item["erasure"].get("masked")
        rows = plan.get("rows")
        result.append({"collection": name, "planned": rows, "masked": masked,
                       "same": (rows or 0) == (masked or 0) or rows is None})
    return result
