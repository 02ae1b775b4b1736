"""The request guarantees at the DAG level (dag.test): each case below failed on the code before its fix.

A request names its policy; a rejected duplicate id leaves the original untouched; a duplicate subject in
flight is refused; oversized and control-character identities are refused at the trigger and again in
validate_request, with 0 rows changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.dag_runs import start, table

JANE = {"email": "jane@example.com"}
JOHN = {"email": "john@example.com"}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def build_dag(airflow_db: None, config_folder, storage: Path):
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.model.loading import load_config

    return lambda: build_privacy_request_dag(load_config(config_folder.path))


def test_a_conf_without_policy_is_refused_at_the_trigger(build_dag, shop_db: Path, storage: Path) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    before = table(shop_db, "customer")
    with pytest.raises(ParamValidationError, match="policy"):
        build_dag().test(run_conf={"identity": JOHN})
    assert table(shop_db, "customer") == before
    assert not storage.exists()


def test_validate_request_checks_the_conf_sent_not_the_params_defaults(build_dag, shop_db: Path,
                                                                       storage: Path, smtp) -> None:
    """Even where a Param would supply a policy (an older DAG, a custom form), the conf must name one."""
    from airflow.sdk import Param

    dag = build_dag()
    dag.params["policy"] = Param("default_erasure_policy", type="string")
    before = table(shop_db, "customer")
    dag_run = dag.test(run_conf={"identity": JOHN})

    assert dag_run.state == "failed"
    assert table(shop_db, "customer") == before
    assert smtp.received == []
    assert not storage.exists() or not any(storage.rglob("report.json"))


def test_a_rejected_duplicate_id_leaves_the_original_request_untouched(run_request, shop_db: Path,
                                                                       storage: Path, smtp) -> None:
    run_request("default_access_policy", JANE, request_id="req-7")
    original = storage / "req-7"
    files_before = {p: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    john_before = table(shop_db, "customer")[1]

    _, dag_run, states = run_request("default_erasure_policy", JOHN, request_id="req-7")

    assert dag_run.state == "failed"
    assert states["validate_request"] == ("failed", 1)
    assert table(shop_db, "customer")[1] == john_before
    files_after = {p: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    assert files_after == files_before  # not one byte of the first request changed, no file added
    report = read_json(original / "report.json")
    assert (report["status"], report["policy"]) == ("complete", "default_access_policy")
    assert not [e for e in report["events"] if e["event"] == "checkpoint_failed"]


def test_a_second_request_for_a_subject_in_flight_is_refused(build_dag, run_request, shop_db: Path,
                                                             storage: Path, smtp) -> None:
    """The first request has passed validate_request and is still running when the second one starts."""
    # Its run is still running in Airflow (a dead holder's claim is released: test_subject_order.py).
    start(build_dag(), {"policy": "default_erasure_policy", "identity": JANE, "request_id": "first"},
          ["validate_request"])
    before = table(shop_db, "customer")

    _, dag_run, states = run_request("default_erasure_policy", {"email": "JANE@example.com"}, request_id="second")

    assert dag_run.state == "failed"
    assert states["validate_request"] == ("failed", 1)
    assert table(shop_db, "customer") == before
    assert smtp.received == []
    message = read_json(storage / "second" / "report.json")["failed_checkpoint"]["message"]
    assert "request 'first' for the same subject and policy is still in progress" in message
    assert "jane@example.com" not in json.dumps(read_json(storage / "second" / "report.json")).lower()

    # Another subject, or the same subject under another policy, is not held up.
    _, other, _ = run_request("default_erasure_policy", JOHN, request_id="third")
    _, access, _ = run_request("default_access_policy", JANE, request_id="fourth")
    assert (other.state, access.state) == ("success", "success")


def test_a_finished_request_frees_its_subject(run_request, shop_db: Path, storage: Path, smtp) -> None:
    _, first, _ = run_request("default_erasure_policy", JANE, request_id="first")
    _, second, _ = run_request("default_erasure_policy", JANE, request_id="second")
    assert (first.state, second.state) == ("success", "success")
    assert len(list((storage / "_subjects").rglob("*.json"))) == 1  # finalize removed the older claim


@pytest.mark.parametrize("identity, problem", [
    ({"email": "a" * 1_000_000 + "@example.com"}, "maxLength|too long"),
    ({"email": "jane\x00@example.com"}, "does not match"),
    ({"phone_number": "+1555\n5550100"}, "does not match"),
])
def test_oversized_and_control_character_identities_are_refused_at_the_trigger(
        build_dag, shop_db: Path, storage: Path, identity: dict[str, str], problem: str) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    before = table(shop_db, "customer")
    with pytest.raises(ParamValidationError, match=problem):
        build_dag().test(run_conf={"policy": "default_erasure_policy", "identity": identity})
    assert table(shop_db, "customer") == before
    assert not storage.exists()


def test_validate_request_refuses_a_nul_byte_the_form_did_not_see(build_dag, shop_db: Path, storage: Path,
                                                                    smtp) -> None:
    """A REST or CLI caller can bypass a Param's schema (an older DAG): the engine checks again."""
    from airflow.sdk import Param

    dag = build_dag()
    dag.params["identity"] = Param({}, type="object")
    before = table(shop_db, "customer")
    dag_run = dag.test(run_conf={"policy": "default_erasure_policy", "identity": {"email": "jane\x00@example.com"}})

    assert dag_run.state == "failed"
    assert table(shop_db, "customer") == before
    assert smtp.received == []


def test_a_text_strategy_on_a_timestamp_column_is_refused_before_anything_is_touched(
        run_request, config_folder, shop_db: Path, storage: Path, smtp) -> None:
    """Case 7: the column's real type is checked in validate_request (reflected), not met half-way through."""
    import sqlite3

    with sqlite3.connect(shop_db) as con:
        con.execute("ALTER TABLE customer ADD COLUMN birthday TIMESTAMP")
    config_folder.edit("datasets/demo_shop.yml", lambda d: d["dataset"][0]["collections"][0]["fields"].append(
        {"name": "birthday", "data_categories": ["user.demographic.date_of_birth"]}))
    config_folder.edit("policies/demo_policies.yml", lambda d: d["policy"][1]["rules"].append(
        {"key": "erase_birthday", "action": "erasure", "targets": ["user.demographic.date_of_birth"],
         "masking_strategy": {"strategy": "hash"}}))
    before = {name: table(shop_db, name) for name in ("customer", "address", "payment_card")}

    _, dag_run, states = run_request("default_erasure_policy", JANE)

    assert dag_run.state == "failed"
    assert states["validate_request"] == ("failed", 1)
    assert {name: table(shop_db, name) for name in before} == before
    assert smtp.received == []
    message = read_json(storage / "req-1" / "report.json")["failed_checkpoint"]["message"]
    assert "demo_shop:customer.birthday: strategy 'hash' writes text but the column is TIMESTAMP" in message
    assert "use null_rewrite for this field" in message
