"""Where the request store lives: a local folder is reached as a plain path (no fsspec layers), anything else,
or a folder reached through a connection, as Airflow's ObjectStoragePath."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from include.privacy_requests.airflow.storage import local_folder, storage_root


@pytest.mark.parametrize(("url", "expected"), [
    ("file:///var/privacy/store", Path("/var/privacy/store")),
    ("file://localhost/var/privacy/store", Path("/var/privacy/store")),
    ("file:///var/privacy%20requests", Path("/var/privacy requests")),
    ("/var/privacy/store", Path("/var/privacy/store")),
    ("s3://bucket/requests", None),
    ("file://otherhost/share", None),
    ("relative/folder", None),
])
def test_a_local_folder_is_recognised_from_its_url(url: str, expected: Path | None) -> None:
    assert local_folder(url) == expected


def _config(storage: str, conn_id: str | None) -> SimpleNamespace:
    return SimpleNamespace(storage=storage, settings=SimpleNamespace(storage_conn_id=conn_id))


def test_a_local_store_is_a_plain_path_and_holds_the_same_files(tmp_path: Path) -> None:
    root = storage_root(_config(f"file://{tmp_path}", None))  # type: ignore[arg-type]
    assert isinstance(root, Path)
    (root / "req-1").mkdir()
    with (root / "req-1" / "request.json").open("xb") as fh:
        fh.write(b"{}")
    assert (tmp_path / "req-1" / "request.json").read_bytes() == b"{}"


def test_object_storage_and_a_folder_behind_a_connection_stay_object_storage_paths(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    assert isinstance(storage_root(_config("s3://bucket/requests", None)), ObjectStoragePath)  # type: ignore[arg-type]
    root = storage_root(_config(f"file://{tmp_path}", "fs_default"))  # type: ignore[arg-type]
    assert isinstance(root, ObjectStoragePath)
