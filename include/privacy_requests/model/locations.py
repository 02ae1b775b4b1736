"""Locations a configuration names for input: local folders and object-storage URL prefixes (privacy.yml's
``batch.subjects_from``). Only the syntax lives here; batch/source.py decides whether a given URL falls inside.
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
# No query, fragment, fsspec protocol chaining ('::'), backslash, whitespace or control character.
UNSAFE_URL = re.compile(r"[\x00-\x20\x7f?#\\]|::")
LOCAL_SCHEMES = (None, "file", "local")


def split_url(url: str) -> tuple[str | None, str]:
    """(scheme in lower case or None, the rest)."""
    match = _SCHEME.match(url)
    return (match.group(1).lower(), match.group(2)) if match else (None, url)


def local_path(scheme: str | None, rest: str) -> str | None:
    """The absolute path a local location names (``/x``, ``file:///x``, ``file://localhost/x``), else None."""
    if scheme is None:
        return rest if rest.startswith("/") else None
    if rest.startswith("localhost/"):
        rest = rest.removeprefix("localhost")
    return rest if rest.startswith("/") else None


def check_inbox(entry: str) -> str | None:
    """What is wrong with one ``batch.subjects_from`` entry; None when nothing is."""
    if UNSAFE_URL.search(entry):
        return "an inbox may hold no query, fragment, '::', backslash, space or control character"
    scheme, rest = split_url(entry)
    if scheme in LOCAL_SCHEMES:
        return None if local_path(scheme, rest) else "a local inbox is an absolute folder path (or file:///...)"
    segments = rest.rstrip("/").split("/")
    if not segments[0] or any(s in ("", ".", "..") for s in segments[1:]):
        return "an object-storage inbox is a URL prefix such as s3://bucket/inbox/ (no '.' or '..' segment)"
    return None
