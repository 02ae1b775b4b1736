"""Where a batch's subjects come from, and how a subjects file is read without trusting it.

``subjects_url`` names a JSON Lines file. It is read only from where ``privacy.yml`` says subjects arrive
(``batch.subjects_from``: local inbox folders and object-storage prefixes), checked before anything is opened:
a local path is resolved first (symlinks, ``..``) and must be a regular file strictly inside an inbox; a URL
must start with a configured prefix and hold no ``.``/``..`` segment, no query and no chained protocol.

The file is read in blocks of 64 KiB, never a whole line at once: a line longer than ``max_line_bytes`` is
skipped to its end without being kept, and a file past ``max_file_bytes`` or with more than ``max_subjects``
subjects stops the batch. A line that is too long, not UTF-8, not JSON or nested too deeply is rejected alone
with a reason that names the rule, never the line's content.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import RequestError
from ..model.locations import LOCAL_SCHEMES, UNSAFE_URL, local_path, split_url

BLOCK_BYTES = 1 << 16
# A subject is {"request_id": ..., "identity": {...}}: two levels. Deeper input is no subject, and decoding
# it costs a recursion per level.
MAX_DEPTH = 4
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class Unreadable:
    """A line that is no subject, with the rule it broke (never its content)."""

    reason: str


@dataclass(frozen=True)
class Limits:
    """How much of a subjects file is read: bytes per line, bytes in all, subjects in all."""

    max_line_bytes: int
    max_file_bytes: int
    max_subjects: int


@dataclass(frozen=True)
class LocalFile:
    """A subjects file inside a local inbox, as resolved (symlinks followed)."""

    path: Path


@dataclass(frozen=True)
class RemoteObject:
    """A subjects file under a configured object-storage prefix."""

    url: str


def check_subjects_url(url: str, subjects_from: Iterable[str]) -> LocalFile | RemoteObject:
    """Where ``subjects_url`` may be read from, decided before anything is opened; RequestError otherwise.

    The reasons name the rule and the configured inboxes, not what the URL points at."""
    allowed = list(subjects_from)
    where = ", ".join(allowed) if allowed else "none configured"
    refusal = (f"subjects_url must name a file inside a subjects inbox of privacy.yml (batch.subjects_from: "
               f"{where})")
    if not allowed:
        raise RequestError(f"{refusal}: add the folder or object-storage prefix that subjects files arrive in")
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH or UNSAFE_URL.search(url):
        raise RequestError(f"{refusal}; it may hold no query, fragment, '::', backslash, space or control "
                           "character")
    scheme, rest = split_url(url)
    if scheme in LOCAL_SCHEMES:
        path = local_path(scheme, rest)
        if path is None:
            raise RequestError(f"{refusal}; a local file is an absolute path or a file:/// URL")
        resolved = Path(os.path.realpath(path))
        for inbox in allowed:
            folder = _local_inbox(inbox)
            if folder is not None and resolved != folder and resolved.is_relative_to(folder):
                return LocalFile(resolved)
        raise RequestError(refusal)
    segments = rest.split("/")
    if any(s in ("", ".", "..") for s in segments[1:]) or not segments[0]:
        raise RequestError(f"{refusal}; the URL may have no empty, '.' or '..' segment")
    for prefix in allowed:
        if split_url(prefix)[0] == scheme and url.startswith(prefix.rstrip("/") + "/"):
            return RemoteObject(url)
    raise RequestError(refusal)


def _local_inbox(entry: str) -> Path | None:
    scheme, rest = split_url(entry)
    if scheme not in LOCAL_SCHEMES:
        return None
    path = local_path(scheme, rest)
    return Path(os.path.realpath(path)) if path else None


def open_local(path: Path) -> BinaryIO:
    """The resolved file, opened without following a link swapped in since the check, and only if it is a
    regular file (not a device such as /dev/zero, a FIFO or a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise RequestError(f"subjects_url cannot be read: {type(exc).__name__}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RequestError("subjects_url is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_subjects(source: LocalFile | RemoteObject, limits: Limits,
                  open_remote: Callable[[str], BinaryIO]) -> Iterator[Any]:
    """The subjects of a checked source, streamed (see subject_lines)."""
    try:
        fh = open_local(source.path) if isinstance(source, LocalFile) else open_remote(source.url)
    except RequestError:
        raise
    except (OSError, ValueError) as exc:
        raise RequestError(f"subjects_url cannot be read: {type(exc).__name__}") from None
    with fh:
        try:
            yield from subject_lines(fh, limits)
        except (OSError, ValueError) as exc:  # the file broke off while being read
            raise RequestError(f"subjects_url cannot be read: {type(exc).__name__}") from None


def subject_lines(fh: BinaryIO, limits: Limits) -> Iterator[Any]:
    """Each non-blank line of a JSON Lines file, decoded, or an Unreadable saying why it is no subject.

    Reads blocks of BLOCK_BYTES; holds at most one line of ``max_line_bytes``; an overlong line is rejected as
    soon as it passes the limit and its rest is skipped unread into memory. RequestError when the file goes
    past ``max_file_bytes`` or holds more than ``max_subjects`` lines."""
    line = bytearray()
    skipping = False
    total = count = 0

    def counted(item: Any) -> Any:
        nonlocal count
        count += 1
        if count > limits.max_subjects:
            raise RequestError(f"the subjects file holds more than {limits.max_subjects} subjects (privacy.yml "
                               "batch.max_subjects): split it into several batches")
        return item

    while True:
        block = fh.read(BLOCK_BYTES)
        if not block:
            break
        total += len(block)
        if total > limits.max_file_bytes:
            raise RequestError(f"the subjects file is larger than {limits.max_file_bytes} bytes (privacy.yml "
                               "batch.max_file_bytes): split it into several batches")
        start = 0
        while start <= len(block):
            end = block.find(b"\n", start)
            piece = block[start:] if end < 0 else block[start:end]
            if not skipping:
                if len(line) + len(piece) > limits.max_line_bytes:
                    skipping = True
                    line.clear()
                    yield counted(Unreadable(f"line longer than {limits.max_line_bytes} bytes (privacy.yml "
                                             "batch.max_line_bytes)"))
                else:
                    line += piece
            if end < 0:
                break
            if skipping:
                skipping = False
            else:
                parsed = _parse(bytes(line))
                line.clear()
                if parsed is not _BLANK:
                    yield counted(parsed)
            start = end + 1
    if line and not skipping:
        parsed = _parse(bytes(line))
        if parsed is not _BLANK:
            yield counted(parsed)


_BLANK = object()


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        return _BLANK
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Unreadable("line is not UTF-8")
    try:
        value = json.loads(text)
    except RecursionError:
        return Unreadable(f"line nested more than {MAX_DEPTH} levels deep")
    except ValueError:
        return Unreadable("line is not JSON")
    if _deeper_than(value, MAX_DEPTH):
        return Unreadable(f"line nested more than {MAX_DEPTH} levels deep")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether a decoded value nests deeper than ``limit`` objects or lists (iteratively: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
