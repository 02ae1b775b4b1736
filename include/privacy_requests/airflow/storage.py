"""The root of the request store: a local folder as a plain ``pathlib.Path``, anything else as an
ObjectStoragePath with the credentials of the connection privacy.yml names (``storage_conn_id``): every task,
whichever worker runs it, and the UI reach the same objects.

A local folder skips fsspec's layers: the files are the same, and the store's create-only-if-absent writes
stay ``open("xb")`` (O_EXCL). Each ObjectStoragePath join and open costs a fraction of a millisecond more,
which a batch pays several times per subject. On S3 the create-only-if-absent writes become a PUT with
``If-None-Match: *`` (s3fs), so the writes that decide "exactly once" stay conditional on object storage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from ..model.settings import PrivacyConfig


def storage_root(config: PrivacyConfig) -> Path | ObjectStoragePath:
    """``{storage}`` of privacy.yml (or PRIVACY_REQUESTS_STORAGE), reached through ``storage_conn_id``."""
    local = local_folder(config.storage)
    if local is not None and config.settings.storage_conn_id is None:
        return local
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(config.storage, conn_id=config.settings.storage_conn_id)


def local_folder(url: str) -> Path | None:
    """The folder a ``file://`` URL (or an absolute path) names on this machine, else None."""
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(unquote(parts.path))
    if not parts.scheme and url.startswith("/"):
        return Path(url)
    return None
