"""A batch does what the same single requests do, on the demo (SQLite shop, the daycare vendor): John's
newest order ships to Jane's home address, so one address row belongs to two subjects of the batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.support.equivalence import (
    access_package,
    assert_same_erasure,
    digest_instructions,
    report_counts,
    run_batch_dag,
    single_instructions,
    snapshot,
)
from tests.support.paths import DEMO_CONFIG

SUBJECTS = {
    "jane": {"email": "jane@example.com"},
    "john": {"email": "john@example.com"},
    "ada": {"email": "ada@example.com", "phone_number": "+15555550142"},
}
SHARED_ADDRESS = "INSERT INTO orders VALUES (13, 2, 1, 5.00)"  # John's order to Jane's address 1
HASHED = {("customer", "phone"), ("sms_subscription", "phone")}  # default_erasure_policy: hash, salt per request


@pytest.fixture
def run_batch(airflow_db: None, config_folder, storage: Path):
    return lambda policy, subjects, batch_id: run_batch_dag(config_folder.path, policy, subjects, batch_id)


def shop_copy(path: Path) -> Path:
    with sqlite3.connect(path) as con:
        con.executescript((DEMO_CONFIG / "seed" / "demo_shop.sql").read_text())
        con.execute(SHARED_ADDRESS)
    return path


def test_a_batch_of_the_demo_equals_its_single_requests(run_request, run_batch, config_folder, storage: Path,
                                                         smtp, tmp_path: Path, monkeypatch) -> None:
    singles_db, batch_db = shop_copy(tmp_path / "singles.db"), shop_copy(tmp_path / "batch.db")
    before = snapshot(create_engine(f"sqlite:///{singles_db}"))

    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", f"sqlite:///{singles_db}")
    for policy, kind in (("default_access_policy", "access"), ("default_erasure_policy", "erasure")):
        for name, identity in SUBJECTS.items():
            _, dag_run, states = run_request(policy, identity, f"s-{kind}-{name}")
            assert dag_run.state == "success", states
    single_emails = list(smtp.received)
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", f"sqlite:///{batch_db}")
    for policy, kind in (("default_access_policy", "access"), ("default_erasure_policy", "erasure")):
        subjects = [{"request_id": f"b-{kind}-{name}", "identity": identity} for name, identity in SUBJECTS.items()]
        dag_run, states = run_batch(policy, subjects, f"batch-{kind}")
        assert dag_run.state == "success", states
    batch_emails = smtp.received[len(single_emails):]

    for name in SUBJECTS:
        assert access_package(storage, f"b-access-{name}") == access_package(storage, f"s-access-{name}"), name
        for kind in ("access", "erasure"):
            assert report_counts(storage, f"b-{kind}-{name}") == report_counts(storage, f"s-{kind}-{name}"), name
    assert any("3 Ocean Drive" in row for row in access_package(storage, "b-access-jane")["demo_shop:address"])
    assert any("1 Main Street" in row for row in access_package(storage, "b-access-john")["demo_shop:address"])

    changed = assert_same_erasure(before, snapshot(create_engine(f"sqlite:///{singles_db}")),
                                  snapshot(create_engine(f"sqlite:///{batch_db}")), HASHED)
    assert ("address", (1,), "street") in changed  # the shared address, erased once by the batch
    assert {("customer", (n,), "name") for n in (1, 2, 3)} <= changed
    assert ("address", (2,), "street") in changed and ("address", (4,), "street") in changed

    # One email per subject against one for the batch, the same instructions for each subject.
    assert len(single_emails) == len(SUBJECTS) and len(batch_emails) == 1
    singles = dict(single_instructions(m.part("text/plain")) for m in single_emails)
    batch = digest_instructions(batch_emails[0].part("text/plain"))
    assert {ref.removeprefix("b-erasure-"): body for ref, body in batch.items()} == {
        ref.removeprefix("s-erasure-"): body for ref, body in singles.items()}
    assert batch_emails[0].envelope_to == single_emails[0].envelope_to == ["privacy@daycare-vendor.example"]
