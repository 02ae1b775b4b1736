"""``access_package.zip``: one CSV file per collection, for spreadsheets.

UTF-8 (with a byte order mark, so spreadsheet programs read accents right), a header row of dotted field
paths, nested values flattened by their path. A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return is prefixed with a single quote, as OWASP recommends against CSV injection: a spreadsheet
then shows it as text instead of running it as a formula. Rows are streamed into the archive, never held.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable
from itertools import chain
from typing import Any, BinaryIO

from ...model.values import values_at

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A value as a CSV cell: text that a spreadsheet would run as a formula gets a leading quote; lists
    and objects are written as JSON; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return value


def _cell(row: dict[str, Any], path: str) -> Any:
    found = list(values_at(row, path)) if "." in path else [row.get(path)]
    return safe_cell(found[0] if len(found) == 1 else found or None)


def write_csv_zip(fh: BinaryIO, tables: Iterable[tuple[str, list[str], Iterable[dict[str, Any]]]]) -> dict[str, int]:
    """Write ``(name, paths, rows)`` tables as ``{name}.csv`` entries; a table without rows is left out.
    Returns the rows per table written."""
    counts: dict[str, int] = {}
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, paths, rows in tables:
            iterator = iter(rows)
            first = next(iterator, None)
            if first is None:
                continue
            with archive.open(f"{name}.csv", "w", force_zip64=True) as entry:
                text = io.TextIOWrapper(entry, encoding="utf-8-sig", newline="")
                writer = csv.writer(text)
                writer.writerow(paths)
                count = 0
                for row in chain([first], iterator):
                    writer.writerow([_cell(row, p) for p in paths])
                    count += 1
                text.flush()
                text.detach()
            counts[name] = count
    return counts
