"""The batch engine without Airflow, on the demo shop in SQLite: provenance (a row reached from two subjects
belongs to both), chunking (many small statements find what one statement finds), erasure once per row, and
subjects rejected alone."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine

from include.privacy_requests.batch.collections import access_batch_collection, chunks, erase_batch_collection
from include.privacy_requests.batch.outputs import record_batch_failure
from include.privacy_requests.batch.provenance import Provenance
from include.privacy_requests.batch.subjects import Batch, open_batch, start_batch
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.connectors.vendor import VendorConnector
from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import BatchSettings, PrivacyConfig
from include.privacy_requests.store import layout
from tests.support.paths import DEMO_CONFIG

KEY = Fernet.generate_key().decode()
SUBJECTS = [{"request_id": "r-jane", "identity": {"email": "jane@example.com"}},
            {"request_id": "r-john", "identity": {"email": "john@example.com"}},
            {"request_id": "r-ada", "identity": {"email": "ada@example.com"}}]
ADDRESS = CollectionAddress("demo_shop", "address")


@pytest.fixture(scope="module")
def config() -> PrivacyConfig:
    return load_config(DEMO_CONFIG)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """The demo shop, with John living at Jane's address (address 1 is reached from both)."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as con:
        con.executescript((DEMO_CONFIG / "seed" / "demo_shop.sql").read_text())
        con.execute("UPDATE customer SET address_id = 1 WHERE id = 2")
    return path


def with_chunk_size(config: PrivacyConfig, size: int) -> PrivacyConfig:
    return dataclasses.replace(config, settings=config.settings.model_copy(
        update={"batch": BatchSettings(chunk_size=size)}))


def run_access(config: PrivacyConfig, root: Path, shop: Path, policy: str = "default_erasure_policy",
               subjects: list[dict[str, Any]] = SUBJECTS) -> tuple[Batch, dict[CollectionAddress, int]]:
    """Validate and run every access step; returns the batch and the statements per collection."""
    root.mkdir(exist_ok=True)
    batch = open_batch(config, {"batch_id": "b-1", "policy": policy, "subjects": subjects}, "run-1", root, KEY)
    start_batch(batch, "run-1", "2026-11-28T00:00:00+00:00", subjects)
    engine = create_engine(f"sqlite:///{shop}")
    statements = {}
    for address in config.plan.order:
        connector = SqlConnector(engine) if address.dataset == "demo_shop" else VendorConnector()
        statements[address] = access_batch_collection(batch, address, lambda _ds, c=connector: c, 1).statements
    return batch, statements


def found(batch: Batch, address: CollectionAddress) -> dict[str, list[int]]:
    """Each found row (by primary key) with the positions of the subjects it belongs to."""
    keys = [f.column for f in batch.config.graph.collections[address].primary_keys]
    items = batch.store.read_rows(layout.rows(address))
    return {"/".join(str(i["row"][k]) for k in keys): i["subjects"] for i in items}


def test_a_row_reached_from_two_subjects_belongs_to_both(config: PrivacyConfig, shop: Path, tmp_path: Path) -> None:
    batch, statements = run_access(config, tmp_path / "storage", shop)

    assert found(batch, CollectionAddress("demo_shop", "customer")) == {"1": [0], "2": [1], "3": [2]}
    # Address 1: Jane's and John's home; 3: Jane's order ships there; 2: John's order; 4: Ada's home.
    assert found(batch, ADDRESS) == {"1": [0, 1], "2": [1], "3": [0], "4": [2]}
    assert found(batch, CollectionAddress("demo_shop", "orders")) == {"10": [0], "11": [0], "12": [1]}
    assert statements[CollectionAddress("demo_shop", "customer")] == 1
    result = batch.store.get(layout.result(layout.ACCESS, ADDRESS))
    assert result["per_subject"] == {"0": 2, "1": 2, "2": 1}


def test_three_chunks_find_what_one_statement_finds(config: PrivacyConfig, shop: Path, tmp_path: Path) -> None:
    one, one_statements = run_access(config, tmp_path / "one", shop)
    many, many_statements = run_access(with_chunk_size(config, 1), tmp_path / "many", shop)

    customer = CollectionAddress("demo_shop", "customer")
    assert (one_statements[customer], many_statements[customer]) == (1, 3)
    for address in config.plan.order:
        assert found(many, address) == found(one, address), address


def test_erasure_masks_each_row_once_for_all_subjects(config: PrivacyConfig, shop: Path, tmp_path: Path) -> None:
    batch, _ = run_access(config, tmp_path / "storage", shop, subjects=SUBJECTS[:2])
    engine = create_engine(f"sqlite:///{shop}")
    connector = SqlConnector(engine)

    outcome = erase_batch_collection(batch, ADDRESS, lambda _ds: connector, 1)
    again = erase_batch_collection(batch, ADDRESS, lambda _ds: SqlConnector(engine), 2)

    # addresses 1, 2, 3, the shared one once: one UPDATE, and one statement counting them (proof of erasure)
    assert (outcome.masked, connector.statements) == (3, 2)
    assert again.masked == 3 and again.detail["masked_at_try"] == 1  # the ledger answers a second try
    with sqlite3.connect(shop) as con:
        streets = dict(con.execute("SELECT id, street FROM address").fetchall())
    assert streets == {1: "REDACTED", 2: "REDACTED", 3: "REDACTED", 4: "4 Hill Lane"}


def test_per_subject_bookkeeping_is_two_claims_a_report_and_a_release(config: PrivacyConfig, shop: Path,
                                                                    tmp_path: Path) -> None:
    """validate_request writes, per accepted subject, only the deciding claims (its request id, its subject);
    its request_validated event rides in the batch's subjects list, and finalize puts it in the subject's
    report, as a single request's report has it (the batch pages find a subject's report by that event)."""
    from include.privacy_requests.batch.outputs import finish_batch
    from include.privacy_requests.store import in_flight

    batch, _ = run_access(config, tmp_path / "storage", shop, policy="default_access_policy")
    root = tmp_path / "storage"
    for subject in SUBJECTS:
        folder = root / subject["request_id"]
        assert sorted(p.name for p in folder.iterdir()) == ["request.json"]  # no events folder, no other write
    fingerprints = [batch.subject_request(s).subject for s in batch.subjects()]
    assert all(len(list((root / layout.SUBJECTS / f).iterdir())) == 1 for f in fingerprints)  # each claimed

    finish_batch(batch)

    for subject in batch.subjects():
        report = json.loads((root / subject.request_id / "report.json").read_text())
        validated = [e for e in report["events"] if e["event"] == "request_validated"]
        assert validated == [{"event": "request_validated", "time": subject.validated,
                              "policy": "default_access_policy", "identity_types": ["email"], "batch_id": "b-1"}]
        assert report["status"] == "complete"
    again = open_batch(config, {"batch_id": "b-2", "policy": "default_access_policy", "subjects": SUBJECTS[:1]},
                       "run-2", root, KEY)
    assert start_batch(again, "run-2", "2026-11-28T00:00:00+00:00", [
        {"request_id": "r-jane-2", "identity": {"email": "jane@example.com"}}])["subjects"] == 1  # released
    assert in_flight.fingerprint(KEY, "default_access_policy", {"email": "jane@example.com"}) in fingerprints


def test_bad_subjects_are_rejected_alone(config: PrivacyConfig, tmp_path: Path) -> None:
    subjects = [SUBJECTS[0], {"request_id": "r-x", "identity": {"fax": "123"}},
                {"request_id": "r-y", "identity": {"email": "nope"}}, {"identity": {"email": "a@b.example"}},
                SUBJECTS[0]]
    batch = open_batch(config, {"policy": "default_access_policy", "subjects": subjects}, "run-1", tmp_path, KEY)

    counts = start_batch(batch, "run-1", "2026-11-28T00:00:00+00:00", subjects)

    assert counts == {"batch_id": "run-1", "subjects": 1, "rejected": 4}
    assert [s.request_id for s in batch.subjects()] == ["r-jane"]
    reasons = [r["reason"] for r in batch.store.read_rows(layout.BATCH_REJECTED)]
    # The reason counts the unknown identity types and names the known ones; it never echoes an input's names.
    assert "1 unknown identity type(s)" in reasons[0] and "fax" not in reasons[0]
    assert "identity.email" in reasons[1] and "nope" not in reasons[1]
    assert reasons[2].startswith("no request_id") and reasons[3] == "request id given twice in this batch"
    assert (tmp_path / "r-x" / "report.json").exists() and (tmp_path / "r-y" / "report.json").exists()
    # The same subject in a second batch while the first holds it: rejected, the first keeps it.
    other = open_batch(config, {"batch_id": "b-2", "policy": "default_access_policy",
                                "subjects": [{"request_id": "r-jane-2", "identity": {"email": "JANE@example.com"}}]},
                       "run-2", tmp_path, KEY)
    with pytest.raises(RequestError, match="no valid subject.*still in progress"):
        start_batch(other, "run-2", "2026-11-28T00:00:00+00:00", other.conf.subjects or [])


def test_subjects_claimed_before_a_broken_list_are_freed_by_the_failure(config: PrivacyConfig,
                                                                       tmp_path: Path) -> None:
    def broken() -> Iterator[dict[str, Any]]:
        yield SUBJECTS[0]
        raise RequestError("subjects_url cannot be read: ConnectionError")

    batch = open_batch(config, {"batch_id": "b-1", "policy": "default_access_policy", "subjects_url": "x"},
                       "run-1", tmp_path, KEY)
    with pytest.raises(RequestError, match="cannot be read") as failed:
        start_batch(batch, "run-1", "2026-11-28T00:00:00+00:00", broken())
    record_batch_failure(batch, "validate_request", 1, failed.value, final=True)

    assert [s.request_id for s in batch.subjects()] == ["r-jane"]
    report = json.loads((tmp_path / "r-jane" / "report.json").read_text())
    assert report["status"] == "failed" and report["failed_checkpoint"]["checkpoint"] == "validate_request"
    assert json.loads((tmp_path / "batches" / "b-1" / "report.json").read_text())["status"] == "failed"


def test_provenance_and_chunks_unit() -> None:
    arrived = Provenance()
    arrived.add("email", "Jane@Example.com", [0])
    arrived.add("email", "jane@example.com", [3])
    arrived.add("id", 7, [1])
    arrived.add("id", 7, [2])
    assert arrived.values() == {"email": ["Jane@Example.com", "jane@example.com"], "id": [7]}
    assert arrived.subjects_of({"email": "jane@example.com", "id": 7}) == {1, 2, 3}  # exact values first
    assert arrived.subjects_of({"email": "JANE@example.com ", "id": 8}) == {0, 3}  # a collation's match
    assert arrived.subjects_of({"email": "john@example.com", "id": 8}) == set()
    assert list(chunks({"a": [1, 2, 3], "b": [4]}, 4)) == [{"a": [1, 2, 3], "b": [4]}]
    assert list(chunks({"a": [1, 2, 3], "b": [4]}, 2)) == [{"a": [1, 2]}, {"a": [3]}, {"b": [4]}]


def test_each_batch_subject_gets_a_certificate_of_its_own_report(config: PrivacyConfig, shop: Path,
                                                                 tmp_path: Path) -> None:
    """finalize writes each subject's certificate.html from the very text of its report.json (its SHA-256),
    with the batch's dates; a failure reported afterwards removes it, as for a single request."""
    import hashlib
    from datetime import UTC, datetime, timedelta

    from include.privacy_requests.batch.outputs import finish_batch, write_access_packages
    from include.privacy_requests.deliverables.package.expiry import expire_access_packages

    batch, _ = run_access(config, tmp_path / "storage", shop, policy="default_access_policy")
    root = tmp_path / "storage"
    write_access_packages(batch)
    finish_batch(batch)
    for subject in SUBJECTS:
        folder = root / subject["request_id"]
        certificate = (folder / layout.CERTIFICATE).read_text()
        digest = hashlib.sha256((folder / layout.REPORT).read_bytes()).hexdigest()
        assert f'<code id="report-sha256">{digest}</code>' in certificate
        assert "2026-11-28" in certificate and 'class="met"' in certificate  # received with the batch, in time
        assert subject["identity"]["email"] not in certificate
    completed = batch.store.get(layout.COMPLETED)
    finish_batch(batch)  # a cleared finalize: the certificates follow the new reports, completion does not move
    assert batch.store.get(layout.COMPLETED) == completed
    folder = root / "r-jane"
    digest = hashlib.sha256((folder / layout.REPORT).read_bytes()).hexdigest()
    assert f'<code id="report-sha256">{digest}</code>' in (folder / layout.CERTIFICATE).read_text()

    # Retention deletes the packages a month later: the event joins each report, and the certificate follows.
    assert expire_access_packages(config, root, KEY, now=datetime.now(UTC) + timedelta(days=31)).requests == 3
    for subject in SUBJECTS:
        folder = root / subject["request_id"]
        assert "access_package_deleted" in (folder / layout.REPORT).read_text()
        digest = hashlib.sha256((folder / layout.REPORT).read_bytes()).hexdigest()
        assert f'<code id="report-sha256">{digest}</code>' in (folder / layout.CERTIFICATE).read_text()

    record_batch_failure(batch, "finalize", 3, RequestError("broken"), final=True)
    assert not any((root / s["request_id"] / layout.CERTIFICATE).exists() for s in SUBJECTS)
