"""The root of the request store as an ObjectStoragePath, with the credentials of the connection privacy.yml
names (``storage_conn_id``): every task, whichever worker runs it, and the UI reach the same objects.

On S3 the store's create-only-if-absent writes (``open("xb")``) become a PUT with ``If-None-Match: *`` (s3fs),
so the writes that decide "exactly once" stay conditional on object storage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from ..model.settings import PrivacyConfig


def storage_root(config: PrivacyConfig) -> ObjectStoragePath:
    """``{storage}`` of privacy.yml (or PRIVACY_REQUESTS_STORAGE), reached through ``storage_conn_id``."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(config.storage, conn_id=config.settings.storage_conn_id)
