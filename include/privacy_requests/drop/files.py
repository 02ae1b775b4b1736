"""The DROP download: a ZIP with one CSV per consumer deletion list, ``<YYYYMMDD>_<DataBrokerId>_<DataType>
[_<suffix>].csv`` with the header ``ID,Hash`` (header only when the list is empty), and a ``..._Removed.csv``
(``ID,Hash,ListType``) of identifiers consumers withdrew since.

The whole archive is checked before any row is used: a file whose name or header is wrong fails the run, naming
the file (the broker's data is untouched). A malformed row is rejected alone, with its file, line and reason;
its content is never echoed (it may be a consumer's identifier).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from ..errors import RequestError
from .hashing import LIST_TYPES, is_drop_hash

REMOVED = "Removed"
FILE_NAME = re.compile(r"^(?P<date>[0-9]{8})_(?P<broker>[A-Za-z0-9]{1,32})_(?P<type>[A-Za-z]+)"
                       r"(?:_(?P<suffix>[A-Za-z0-9]{1,10}))?\.csv$")
WORK_ITEM_ID = re.compile(r"^[A-Za-z0-9]{12}$")
LIST_HEADER = ["ID", "Hash"]
REMOVED_HEADER = ["ID", "Hash", "ListType"]
RESPONSE_HEADER = ["Id", "Status"]


class DropFileError(RequestError):
    """The download cannot be used as a whole (a wrong file name or header): nothing was changed."""


@dataclass(frozen=True)
class ListFile:
    name: str
    download_date: date
    broker_id: str
    list_type: str  # Email, Phone, MAID, CTVID, NDZ, NameVIN, or Removed
    suffix: str | None

    @property
    def removed(self) -> bool:
        return self.list_type == REMOVED


@dataclass
class Rejected:
    file: str
    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclass
class Download:
    """A checked download: its files (names and headers valid), read row by row on demand."""

    archive: zipfile.ZipFile
    files: list[ListFile]
    download_date: date
    broker_id: str
    rejected: list[Rejected] = field(default_factory=list)

    def items(self, list_file: ListFile) -> Iterator[dict[str, str]]:
        """The valid rows of one file, as {id, hash[, list_type]}; each malformed row lands in ``rejected``."""
        seen: set[str] = set()
        with self.archive.open(list_file.name) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
            next(reader, None)  # the header, checked when the download was opened
            width = len(REMOVED_HEADER if list_file.removed else LIST_HEADER)
            for line, row in enumerate(reader, start=2):
                reason = _row_problem(row, width, list_file, seen)
                if reason:
                    if reason != "blank":
                        self.rejected.append(Rejected(list_file.name, line, reason))
                    continue
                seen.add(row[0])
                item = {"id": row[0], "hash": row[1]}
                if list_file.removed:
                    item["list_type"] = row[2]
                yield item


def _row_problem(row: list[str], width: int, list_file: ListFile, seen: set[str]) -> str | None:
    if not row or (len(row) == 1 and not row[0].strip()):
        return "blank"
    if len(row) != width:
        return f"expected {width} columns, found {len(row)}"
    if not WORK_ITEM_ID.match(row[0]):
        return "ID is not a work item id (12 letters or digits)"
    if row[0] in seen:
        return "ID given twice in this file"
    if not is_drop_hash(row[1]):
        return "Hash is not a SHA-256 Base64 hash (44 characters)"
    if list_file.removed and row[2] not in LIST_TYPES:
        return f"ListType is not one of {', '.join(LIST_TYPES)}"
    return None


def parse_file_name(name: str, broker_id: str | None = None) -> ListFile:
    """The parts of a list file's name; DropFileError when it does not follow the specification's pattern."""
    base = name.rsplit("/", 1)[-1]
    match = FILE_NAME.match(base)
    problem = None
    if not match:
        problem = "does not follow <YYYYMMDD>_<DataBrokerId>_<DataType>[_<suffix>].csv"
    elif match["type"] not in (*LIST_TYPES, REMOVED):
        problem = f"has data type '{match['type'][:20]}', not one of {', '.join((*LIST_TYPES, REMOVED))}"
    elif broker_id is not None and match["broker"] != broker_id:
        problem = f"is for data broker id '{match['broker']}', not ours ('{broker_id}')"
    if problem is None:
        assert match is not None
        try:
            day = date(int(match["date"][:4]), int(match["date"][4:6]), int(match["date"][6:]))
        except ValueError:
            problem = "starts with an impossible date"
    if problem:
        raise DropFileError(f"DROP download rejected, nothing was changed: file '{base[:80]}' {problem}")
    return ListFile(name, day, match["broker"], match["type"], match["suffix"])


def open_download(source: bytes | IO[bytes], broker_id: str | None = None) -> Download:
    """Open and check a download ZIP: every CSV's name and header; one date and one broker across files."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
        names = [n for n in archive.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile:
        raise DropFileError("DROP download rejected, nothing was changed: it is not a ZIP archive") from None
    if not names:
        raise DropFileError("DROP download rejected, nothing was changed: the ZIP archive is empty")
    files = [parse_file_name(n, broker_id) for n in sorted(names)]
    dates = {f.download_date for f in files}
    brokers = {f.broker_id for f in files}
    if len(dates) > 1 or len(brokers) > 1:
        raise DropFileError("DROP download rejected, nothing was changed: its files carry different dates or data "
                            "broker ids")
    for list_file in files:
        expected = REMOVED_HEADER if list_file.removed else LIST_HEADER
        with archive.open(list_file.name) as raw:
            header = next(csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")), None)
        if header is None or [h.strip() for h in header] != expected:
            raise DropFileError(f"DROP download rejected, nothing was changed: file '{list_file.name[:80]}' has "
                                f"not the header {','.join(expected)}")
    return Download(archive, files, files[0].download_date, files[0].broker_id)


def response_name(list_file: ListFile, suffix: str | None = None) -> str:
    """The response file's name: the download's name (the specification asks for the same name), with an
    optional suffix of at most ten letters or digits (an amend upload gets its own, e.g. ``amend1``)."""
    parts = [list_file.download_date.strftime("%Y%m%d"), list_file.broker_id, list_file.list_type]
    if suffix or list_file.suffix:
        parts.append(f"{list_file.suffix or ''}{suffix or ''}"[:10])
    return "_".join(parts) + ".csv"


def response_csv(statuses: Iterator[tuple[str, int]]) -> Iterator[str]:
    """The response file's text, chunk by chunk: ``Id,Status`` then one row per work item."""
    yield ",".join(RESPONSE_HEADER) + "\r\n"
    buffer = []
    for work_item, status in statuses:
        buffer.append(f"{work_item},{status}\r\n")
        if len(buffer) >= 10_000:
            yield "".join(buffer)
            buffer = []
    if buffer:
        yield "".join(buffer)
