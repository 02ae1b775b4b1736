"""The per-request checkpoint store: rows, instructions, the side-effect ledger and audit events.

It lives under ``{storage}/{request_id}/`` on any ObjectStoragePath (``file://``, ``s3://`` ...), so it
survives clears (XCom does not) and works across workers. Everything personal is Fernet-encrypted with a
key from the deployment; only the access package files and ``report.json`` are written in clear, as the
request's deliverables. Rows are written and read in encrypted chunks, never held whole in memory.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken

from ..errors import RequestError
from . import layout

CHUNK_ROWS = 1000
# A request id names its folder: one path segment strictly inside the storage (no '.', '..', '/', nor a
# leading dot, so shared indexes such as '_subjects' can never be a request's folder).
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def is_request_folder(name: str) -> bool:
    """Whether a name under the storage root can be a request's folder (others hold shared indexes)."""
    # "abc\n" is not "abc"; "batches" holds the batches' stores
    return re.fullmatch(REQUEST_ID_PATTERN, name) is not None and name != layout.BATCHES


class StoragePath(Protocol):
    """What the store needs of a path: pathlib.Path and Airflow's ObjectStoragePath both qualify."""

    def __truediv__(self, other: str) -> StoragePath: ...
    def open(self, mode: str = ...) -> Any: ...
    def exists(self) -> bool: ...
    def mkdir(self, parents: bool = ..., exist_ok: bool = ...) -> None: ...
    def iterdir(self) -> Iterator[StoragePath]: ...
    def unlink(self) -> None: ...
    def is_dir(self) -> bool: ...

    @property
    def name(self) -> str: ...


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True)


class RequestStore:
    """All state of one privacy request under ``root/request_id``."""

    def __init__(self, root: StoragePath, request_id: str, key: str | bytes) -> None:
        if not is_request_folder(request_id):
            raise RequestError(f"request id {request_id[:40]!r} cannot name a folder inside the storage: use 1 to "
                               "128 letters, digits, '.', '_' or '-', starting with a letter or digit")
        self.root = root
        self.base = root / request_id
        self._key = key
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise RequestError("the request store key is not a valid Fernet key (32 url-safe base64 bytes)") from None

    def other(self, request_id: str) -> RequestStore:
        """Another request's store under the same root and key: a real run reads the dry run it follows."""
        return RequestStore(self.root, request_id, self._key)

    def beside(self, folder: str, name: str) -> RequestStore:
        """The store ``folder/name`` next to the requests, under the same key (a digest vendor's store)."""
        return RequestStore(self.root / folder, name, self._key)

    # -- encrypted JSON documents -------------------------------------------------------------
    def put(self, name: str, value: Any) -> None:
        path = self._path(name)
        with path.open("wb") as fh:
            fh.write(self._fernet.encrypt(dumps(value).encode()))

    def create(self, name: str, value: Any) -> bool:
        """Write a document only if it does not exist yet; False when it does. The write that decides who
        owns something (a request id, a subject in flight) must be this one, never exists-then-put."""
        try:
            with self._path(name).open("xb") as fh:
                fh.write(self._fernet.encrypt(dumps(value).encode()))
        except FileExistsError:
            return False
        return True

    def get(self, name: str, default: Any = None) -> Any:
        path = self.base / name
        if not path.exists():
            return default
        with path.open("rb") as fh:
            return json.loads(self._decrypt(fh.read(), name))

    def delete(self, name: str) -> None:
        path = self.base / name
        if path.exists():
            path.unlink()

    def exists(self, name: str) -> bool:
        return (self.base / name).exists()

    def list(self, folder: str) -> list[str]:
        """Names (relative to the request) of the documents in a folder, sorted."""
        path = self.base / folder
        if not path.exists():
            return []
        return sorted(f"{folder}/{p.name}" for p in path.iterdir())

    # -- rows, streamed in encrypted chunks ------------------------------------------------------
    def write_rows(self, name: str, rows: Iterable[dict[str, Any]]) -> int:
        count = 0
        chunk: list[dict[str, Any]] = []
        with self._path(name).open("wb") as fh:
            for row in rows:
                chunk.append(row)
                if len(chunk) >= CHUNK_ROWS:
                    count += self._write_chunk(fh, chunk)
                    chunk = []
            count += self._write_chunk(fh, chunk)
        return count

    def read_rows(self, name: str) -> Iterator[dict[str, Any]]:
        path = self.base / name
        if not path.exists():
            return
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield from json.loads(self._decrypt(line.strip(), name))

    def _decrypt(self, token: bytes, name: str) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise RequestError(f"cannot decrypt {name}: the store key is not the one this request was written "
                               "with") from None

    def _write_chunk(self, fh: Any, chunk: list[dict[str, Any]]) -> int:
        if chunk:
            fh.write(self._fernet.encrypt(dumps(chunk).encode()) + b"\n")
        return len(chunk)

    # -- audit events -----------------------------------------------------------------------------
    def add_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append an audit event; one object per event, so parallel tasks never overwrite each other."""
        now = datetime.now(UTC)
        event = {"event": kind, "time": now.isoformat(), **fields}
        self.put(layout.event(now, uuid.uuid4().hex[:8]), event)
        return event

    def events(self) -> list[dict[str, Any]]:
        return [self.get(name) for name in self.list(layout.EVENTS)]

    # -- deliverables in clear --------------------------------------------------------------------
    def write_public(self, name: str, chunks: Iterable[str]) -> StoragePath:
        path = self._path(name)
        with path.open("w") as fh:
            for chunk in chunks:
                fh.write(chunk)
        return path

    def open_public(self, name: str) -> Any:
        """A deliverable in clear opened for binary writing (a zip archive is written as a stream)."""
        return self._path(name).open("wb")

    def delete_intermediate(self) -> int:
        """Remove the intermediate data: found rows, value sets, vendor instructions and the masking secrets
        (which would let a key holder brute-force hashed values); the ledger, events and deliverables stay.
        Returns how many objects were deleted."""
        removed = 0
        stack = [self.base / folder for folder in layout.INTERMEDIATE]
        while stack:
            path = stack.pop()
            if not path.exists():
                continue
            if path.is_dir():
                stack.extend(path.iterdir())
            else:
                path.unlink()
                removed += 1
        return removed

    def _path(self, name: str) -> StoragePath:
        path = self.base / name
        parent = self.base
        for part in name.split("/")[:-1]:
            parent = parent / part
        parent.mkdir(parents=True, exist_ok=True)
        return path
