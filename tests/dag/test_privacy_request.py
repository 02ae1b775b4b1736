"""End-to-end privacy requests on the demo configuration, run in-process with dag.test()."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.dag_runs import FinishedRequest, own_request, table

JANE = {"email": "jane@example.com"}


# Runs that several tests only read, each made once for the module.
@pytest.fixture(scope="module")
def janes_access(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> FinishedRequest:
    return own_request(tmp_path_factory.mktemp("access"), "default_access_policy", JANE)


@pytest.fixture(scope="module")
def janes_access_and_erasure(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> FinishedRequest:
    return own_request(tmp_path_factory.mktemp("access-erasure"), "access_and_erasure_policy", JANE)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_access_request_returns_exactly_janes_rows(janes_access: FinishedRequest) -> None:
    dag_run, states, storage, smtp = janes_access.dag_run, janes_access.states, janes_access.storage, janes_access.smtp

    assert dag_run.state == "success"
    package = read_json(storage / "req-1" / "access_package.json")
    # Vendor collections return nothing; every SQL collection reachable from Jane is present.
    assert set(package) == {
        "demo_shop:customer", "demo_shop:sms_subscription", "demo_shop:login", "demo_shop:orders",
        "demo_shop:payment_card", "demo_shop:address", "demo_shop:order_item",
    }
    assert package["demo_shop:customer"] == [
        {"email": "jane@example.com", "id": 1, "loyalty_tier": "gold", "name": "Jane Doe", "phone": "+15555550100"}
    ]
    # Address 1 (home, billing) and 3 (shipping of order 10) are Jane's; 2 and 4 belong to others.
    assert sorted(a["street"] for a in package["demo_shop:address"]) == ["1 Main Street", "3 Ocean Drive"]
    assert sorted((i["product"], i["quantity"]) for i in package["demo_shop:order_item"]) == [
        ("Blue mug", 2), ("Notebook", 3), ("Tea towel", 1)]
    assert [s["topic"] for s in package["demo_shop:sms_subscription"]] == ["offers"]
    # Fields outside the access rule's categories (system.operations) are left out.
    assert all(set(row) == {"customer_id", "total"} for row in package["demo_shop:orders"])
    assert states["upload_access_package"][0] == "success"
    assert {t: s for t, (s, _) in states.items() if t.startswith("erasure")} == {
        t: "skipped" for t in states if t.startswith("erasure")}
    assert smtp.received == []


def test_erasure_request_masks_exactly_the_targeted_fields(run_request, shop_db: Path, storage: Path,
                                                            smtp) -> None:
    before = {name: table(shop_db, name) for name in ("customer", "address", "payment_card", "sms_subscription",
                                                       "orders", "order_item", "login")}
    _, dag_run, states = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "success"
    customers = table(shop_db, "customer")
    jane, john, ada = customers
    assert jane[:3] == (1, "jane@example.com", None)  # name nulled, email (the identity) kept
    assert jane[3] != "+15555550100" and len(jane[3]) == 64  # phone hashed (SHA-256 hex)
    assert jane[4:] == before["customer"][0][4:]
    assert (john, ada) == tuple(before["customer"][1:])
    assert table(shop_db, "address") == [
        (1, "REDACTED", "REDACTED", "REDACTED"), before["address"][1],
        (3, "REDACTED", "REDACTED", "REDACTED"), before["address"][3]]
    assert table(shop_db, "payment_card") == [(200, 1, None, None, 1), before["payment_card"][1]]
    sms = table(shop_db, "sms_subscription")
    assert sms[0][1] == jane[3]  # the same phone number hashes to the same value everywhere
    assert sms[1] == before["sms_subscription"][1]
    for untouched in ("orders", "order_item", "login"):
        assert table(shop_db, untouched) == before[untouched]

    report = read_json(storage / "req-1" / "report.json")
    by_collection = {c["collection"]: c for c in report["collections"]}
    assert by_collection["demo_shop:address"]["erasure"]["masked"] == 2
    assert by_collection["demo_shop:customer"]["access"]["rows"] == 1
    assert report["rows_masked"] == 5
    assert not (storage / "req-1" / "access_package.json").exists()  # the policy has no access rule
    assert states["upload_access_package"][0] == "skipped"


def test_hash_masking_matches_an_independent_computation(run_request, config_folder, shop_db: Path,
                                                           storage: Path, smtp) -> None:
    config_folder.write("policies/hash.yml", {"policy": [{
        "key": "hash_phones",
        "rules": [{"key": "phones", "action": "erasure", "targets": ["user.contact.phone_number"],
                   "masking_strategy": {"strategy": "hash", "configuration": {"algorithm": "SHA-512",
                                                                              "salt": "pepper"}}}],
    }]})
    run_request("hash_phones", JANE)
    assert table(shop_db, "customer")[0][3] == hashlib.sha512(b"+15555550100pepper").hexdigest()
    # The per-request secrets are gone once the request is finished.
    assert not (storage / "req-1" / "secrets.json").exists()


def test_store_keeps_nothing_personal_in_clear_and_drops_rows_when_done(
        janes_access_and_erasure: FinishedRequest) -> None:
    request_dir = janes_access_and_erasure.storage / "req-1"
    leftovers = [p for p in request_dir.rglob("*") if p.is_file()]
    assert not [p for p in leftovers if p.parts[-2] in ("rows", "values", "instructions")]
    for path in leftovers:
        if path.name in ("access_package.json", "access_package.html", "access_package.zip"):
            continue  # the deliverable: the subject's data, by design
        assert b"jane@example.com" not in path.read_bytes(), path
        assert b"Jane Doe" not in path.read_bytes(), path


def test_no_personal_data_in_xcom(janes_access_and_erasure: FinishedRequest) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag_run = janes_access_and_erasure.dag_run
    with create_session() as session:
        values = [json.dumps(x.value) for x in session.query(XComModel).filter_by(run_id=dag_run.run_id)]
    assert values, "tasks push their counts to XCom"
    assert not [v for v in values if "jane" in v.lower() or "Jane Doe" in v]


def test_identity_values_are_registered_with_the_secret_masker(run_request, shop_db: Path, smtp) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    run_request("default_access_policy", JANE)
    assert redact("found jane@example.com") == "found ***"


def test_unknown_policy_is_refused_before_a_run_starts(run_request, shop_db: Path, storage: Path) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    before = table(shop_db, "customer")
    with pytest.raises(ParamValidationError, match="no_such_policy"):
        run_request("no_such_policy", JANE)
    assert table(shop_db, "customer") == before
    assert not storage.exists()


def test_bad_vendor_address_fails_validation_and_touches_nothing(run_request, config_folder, shop_db: Path,
                                                                 storage: Path, smtp) -> None:
    config_folder.edit("privacy.yml", lambda d: d["datasets"]["daycare_vendor"]["email"].update(to="not-an-address"))
    before = table(shop_db, "customer")
    _, dag_run, states = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "failed"
    assert states["validate_request"] == ("failed", 1)  # no retry for bad input
    assert all(s == "upstream_failed" for t, (s, _) in states.items() if t.startswith(("access", "erasure")))
    assert table(shop_db, "customer") == before
    assert smtp.received == []


def test_unreachable_collections_fail_the_request_naming_them(run_request, shop_db: Path, storage: Path) -> None:
    _, dag_run, states = run_request("default_access_policy", {"phone_number": "+15555550100"})

    assert dag_run.state == "failed"
    assert states["validate_request"][0] == "failed"
    message = read_json(storage / "req-1" / "report.json")["failed_checkpoint"]["message"]
    assert "demo_shop:customer" in message and "demo_shop:address" in message
    assert "giving also email reaches them" in message


def test_identity_only_reached_through_phone_finds_the_customer(run_request, shop_db: Path, storage: Path,
                                                               smtp) -> None:
    """Two identity types: email and phone both given, rows reached from either are found once."""
    _, dag_run, _ = run_request("default_access_policy", {**JANE, "phone_number": "+15555550100"})
    assert dag_run.state == "success"
    package = read_json(storage / "req-1" / "access_package.json")
    assert len(package["demo_shop:sms_subscription"]) == 1
    assert len(package["demo_shop:customer"]) == 1


def test_read_only_sql_dataset_erases_nothing_and_completes(run_request, config_folder, shop_db: Path,
                                                             storage: Path, smtp) -> None:
    config_folder.edit("privacy.yml", lambda d: d["datasets"]["demo_shop"].update(access="read"))
    before = {n: table(shop_db, n) for n in ("customer", "address", "payment_card")}
    _, dag_run, _ = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "success"
    assert {n: table(shop_db, n) for n in before} == before
    report = read_json(storage / "req-1" / "report.json")
    statuses = {c["collection"]: c["erasure"].get("status") for c in report["collections"]}
    assert statuses["demo_shop:customer"] == "read_only"


def test_missing_connection_fails_with_a_clear_message(run_request, monkeypatch, shop_db: Path,
                                                        storage: Path, smtp) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DEMO_SHOP_DB")
    _, dag_run, states = run_request("default_access_policy", JANE)
    assert dag_run.state == "failed"
    assert states["access.demo_shop.customer"] == ("failed", 1)


def test_sqlite_file_unchanged_by_access(janes_access: FinishedRequest) -> None:
    digest = hashlib.sha256(janes_access.shop_before).hexdigest()
    with sqlite3.connect(janes_access.shop):
        pass
    assert hashlib.sha256(janes_access.shop.read_bytes()).hexdigest() == digest
