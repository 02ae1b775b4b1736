"""The request store on S3-compatible object storage (moto's server on 127.0.0.1), reached the way the tasks
reach it: an ObjectStoragePath with the credentials of the Airflow connection privacy.yml names.

The writes that decide "exactly once" must stay conditional there: writers in separate processes (as tasks on
separate workers are) race for the same key, and exactly one wins.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.store import in_flight, layout
from include.privacy_requests.store.store import RequestStore
from tests.support.s3_server import S3Server

CONN_ID = "privacy_store_s3"
RACERS = 4
KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = server.connection_json
    try:
        yield server
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)
        server.stop()


def _root(url: str) -> Any:
    """The store root as the tasks open it (include/privacy_requests/airflow/storage.py)."""
    from include.privacy_requests.airflow.storage import storage_root

    class _Settings:
        storage_conn_id = CONN_ID

    class _Config:
        storage = url
        settings = _Settings

    return storage_root(_Config)  # type: ignore[arg-type]


def test_the_store_round_trips_on_s3_through_the_named_connection(s3: S3Server) -> None:
    bucket = s3.bucket("roundtrip")
    store = RequestStore(_root(f"s3://{bucket}/requests"), "req-1", KEY)
    store.put("answers/a.json", {"email": "jane@example.com"})
    assert store.write_rows(layout.rows(_address()), iter([{"id": i} for i in range(2500)])) == 2500
    assert store.get("answers/a.json") == {"email": "jane@example.com"}
    assert [r["id"] for r in store.read_rows(layout.rows(_address()))] == list(range(2500))
    assert store.list("answers") == ["answers/a.json"]
    keys = s3.keys(bucket, "requests/req-1/")
    assert "requests/req-1/answers/a.json" in keys
    assert b"jane" not in s3.read(bucket, "requests/req-1/answers/a.json")  # encrypted at rest
    assert store.create("answers/a.json", {"other": 1}) is False  # exists: not overwritten
    assert store.get("answers/a.json") == {"email": "jane@example.com"}
    assert store.delete_intermediate() >= 1
    assert not store.exists(layout.rows(_address()))


def _address() -> Any:
    from include.privacy_requests.model.graph import CollectionAddress

    return CollectionAddress("demo_shop", "customer")


def _fresh_filesystems() -> None:
    """A forked racer must not reuse its parent's S3 filesystem (its event loop stays in the parent)."""
    from airflow.sdk.io import store as object_stores
    from s3fs import S3FileSystem

    object_stores._STORE_CACHE.clear()
    S3FileSystem.clear_instance_cache()


def _race_create(url: str, name: str, barrier: Any, results: Any, who: int) -> None:
    _fresh_filesystems()
    store = RequestStore(_root(url), "req-race", KEY)
    store.exists(name)  # connected and listed before the start, as a task would be
    barrier.wait()
    results.put((who, store.create(name, {"writer": who})))


def _race_claim(url: str, subject: str, barrier: Any, results: Any, who: int) -> None:
    _fresh_filesystems()
    root = _root(url)
    (root / layout.SUBJECTS).exists()
    barrier.wait()
    results.put((who, in_flight.claim(root, subject, f"request-{who}")))


def _race(target: Any, *args: Any) -> dict[int, Any]:
    """Runs ``target`` in RACERS separate processes released at once; returns each one's answer."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(RACERS), context.Queue()
    processes = [context.Process(target=target, args=(*args, barrier, results, who)) for who in range(RACERS)]
    for process in processes:
        process.start()
    try:
        answers = dict(results.get(timeout=60) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return answers


def test_racing_writers_of_the_sending_marker_exactly_one_wins(s3: S3Server) -> None:
    bucket = s3.bucket("race-marker")
    url = f"s3://{bucket}/requests"
    name = layout.email_sending("daycare_vendor")
    answers = _race(_race_create, url, name)
    winners = [who for who, won in answers.items() if won]
    assert len(answers) == RACERS and len(winners) == 1
    stored = RequestStore(_root(url), "req-race", KEY).get(name)
    assert stored == {"writer": winners[0]}  # the winner's document, never overwritten by a loser


def test_racing_claims_of_one_subject_exactly_one_holds_it(s3: S3Server) -> None:
    bucket = s3.bucket("race-claim")
    url = f"s3://{bucket}/requests"
    subject = in_flight.fingerprint(KEY, "default_erasure_policy", {"email": "jane@example.com"})
    answers = _race(_race_claim, url, subject)
    winners = [who for who, holder in answers.items() if holder is None]
    assert len(answers) == RACERS and len(winners) == 1
    assert {holder for who, holder in answers.items() if who != winners[0]} == {f"request-{winners[0]}"}
    assert s3.keys(bucket, f"requests/{layout.SUBJECTS}/{subject}/") == [
        f"requests/{layout.SUBJECTS}/{subject}/{0:012d}.json"]


def test_a_key_written_by_someone_else_is_not_overwritten(s3: S3Server, tmp_path: Path) -> None:
    """The condition is checked by the server, not by a listing the writer made earlier."""
    bucket = s3.bucket("precondition")
    store = RequestStore(_root(f"s3://{bucket}/requests"), "req-2", KEY)
    assert not store.exists("ledger/x.json")  # the writer has looked: absent
    s3.client().put_object(Bucket=bucket, Key="requests/req-2/ledger/x.json", Body=b"theirs")
    assert store.create("ledger/x.json", {"mine": True}) is False
    assert s3.read(bucket, "requests/req-2/ledger/x.json") == b"theirs"
