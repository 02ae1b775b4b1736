"""load_config: the demo folder loads, and every kind of mistake is reported with its file and field."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from tests.support.config_files import edit, find, problems_of

DEMO = Path(__file__).resolve().parents[2] / "include" / "privacy"
SHOP = "datasets/demo_shop.yml"
VENDOR = "datasets/daycare_vendor.yml"
POLICIES = "policies/demo_policies.yml"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the demo configuration (privacy.yml, datasets, policies; not the seed data)."""
    target = tmp_path / "privacy"
    target.mkdir()
    shutil.copy(DEMO / "privacy.yml", target / "privacy.yml")
    for sub in ("datasets", "policies"):
        (target / sub).mkdir()
        for path in (DEMO / sub).glob("*.yml"):
            shutil.copy(path, target / sub / path.name)
    return target


def collection(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["dataset"][0]["collections"] if c["name"] == name)


def field_of(data: dict[str, Any], coll: str, name: str) -> dict[str, Any]:
    return next(f for f in collection(data, coll)["fields"] if f["name"] == name)


def shop_ref(data: dict[str, Any], coll: str, name: str) -> dict[str, Any]:
    """The first reference of a demo_shop field, to be edited in place."""
    return field_of(data, coll, name)["fides_meta"]["references"][0]


# -- the demo folder --------------------------------------------------------------------------------------


def test_demo_folder_loads() -> None:
    config = load_config(DEMO)
    assert len(config.graph.collections) == 10
    assert sorted(config.policies) == ["access_and_erasure_policy", "default_access_policy",
                                       "default_erasure_policy", "reviewed_erasure_policy"]
    assert [k for k, p in config.policies.items() if p.manual_approval] == ["reviewed_erasure_policy"]
    assert sorted(config.datasets) == ["daycare_vendor", "demo_shop"]
    assert config.email_datasets == ["daycare_vendor"]
    assert len(config.plan.order) == 10


def test_copied_folder_loads(folder: Path) -> None:
    """The fixture copy is a valid configuration, so each test below fails only because of its edit."""
    assert len(load_config(folder).graph.collections) == 10


def test_organization_category_declared_in_privacy_yml_is_accepted(folder: Path) -> None:
    config = load_config(folder)
    assert "user.loyalty.tier" in config.settings.data_categories
    customer = config.graph.collections[CollectionAddress("demo_shop", "customer")]
    assert customer.field("loyalty_tier").data_categories == ("user.loyalty.tier",)


def test_organization_category_not_declared_is_rejected(folder: Path) -> None:
    edit(folder, "privacy.yml", lambda d: d.update(data_categories=[]))
    problem = find(problems_of(folder), SHOP, "demo_shop.customer.loyalty_tier.data_categories")
    assert "user.loyalty.tier" in problem.message


# -- YAML ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["privacy.yml", SHOP, POLICIES])
def test_invalid_yaml_names_the_file_and_line(folder: Path, name: str) -> None:
    """The file is named as in every other problem (``datasets/x.yml``), so it cannot be confused."""
    (folder / name).write_text("organization: x\nlist: [\n  {name: x\n")
    problems = problems_of(folder)
    bad = [p for p in problems if "invalid YAML" in p.message]
    assert len(bad) == 1, [str(p) for p in problems]
    assert bad[0].file == name
    assert re.fullmatch(r"line \d+, column \d+", bad[0].field), bad[0].field


# -- references ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("collection", "column", "change", "message"), [
    ("orders", "customer_id", {"dataset": "no_such_dataset"}, "unknown dataset 'no_such_dataset'"),
    ("orders", "customer_id", {"field": "buyer.id"}, "unknown collection 'buyer'"),
    ("orders", "customer_id", {"field": "customer.uuid"}, "unknown field 'uuid'"),
    ("customer", "address_id", {"field": "customer.id"}, "own collection"),
])
def test_bad_reference_is_named_with_its_field(folder: Path, collection: str, column: str,
                                               change: dict[str, str], message: str) -> None:
    edit(folder, SHOP, lambda d: shop_ref(d, collection, column).update(change))
    problem = find(problems_of(folder), SHOP, f"demo_shop.{collection}.{column}.fides_meta.references[0]")
    assert message in problem.message


def test_cycle_of_directed_references(folder: Path) -> None:
    """customer -> login by login.customer_id; adding login -> customer closes a cycle."""

    def close_cycle(data: dict[str, Any]) -> None:
        customer_id = field_of(data, "customer", "id")
        customer_id["fides_meta"]["references"] = [
            {"dataset": "demo_shop", "field": "login.customer_id", "direction": "from"}
        ]

    edit(folder, SHOP, close_cycle)
    cycles = [p for p in problems_of(folder) if "cycle" in p.message]
    assert len(cycles) == 1
    assert "demo_shop:customer" in cycles[0].message
    assert "demo_shop:login" in cycles[0].message


# -- ordering -----------------------------------------------------------------------------------------


def _mutual(attr: str) -> Callable[[Any], None]:
    """login and payment_card each ordered after the other with ``fides_meta.<attr>``."""

    def change(data: dict[str, Any]) -> None:
        collection(data, "login")["fides_meta"] = {attr: ["demo_shop.payment_card"]}
        collection(data, "payment_card")["fides_meta"] = {attr: ["demo_shop.login"]}

    return change


def test_after_orders_the_plan(folder: Path) -> None:
    def login_after_address(data: dict[str, Any]) -> None:
        collection(data, "login")["fides_meta"] = {"after": ["demo_shop.address"]}

    edit(folder, SHOP, login_after_address)
    plan = load_config(folder).plan
    login, address = CollectionAddress("demo_shop", "login"), CollectionAddress("demo_shop", "address")
    assert plan.order.index(address) < plan.order.index(login)
    assert address in plan.upstream(login)


def test_cycle_in_after(folder: Path) -> None:
    edit(folder, SHOP, _mutual("after"))
    cycles = [p for p in problems_of(folder) if "cycle" in p.message]
    assert len(cycles) == 1
    assert "fides_meta.after" in cycles[0].field
    assert "demo_shop:login" in cycles[0].message
    assert "demo_shop:payment_card" in cycles[0].message


def test_cycle_message_names_only_the_collections_in_the_cycle(folder: Path) -> None:
    """address waits for payment_card (billing_address_id) but is not part of the login/payment_card cycle."""
    edit(folder, SHOP, _mutual("after"))
    cycles = [p for p in problems_of(folder) if "cycle" in p.message]
    assert len(cycles) == 1
    assert "demo_shop:address" not in cycles[0].message


def test_cycle_in_erase_after(folder: Path) -> None:
    edit(folder, SHOP, _mutual("erase_after"))
    problem = find(problems_of(folder), "datasets", "fides_meta.erase_after")
    assert "demo_shop:login" in problem.message
    assert "demo_shop:payment_card" in problem.message


def test_after_unknown_collection(folder: Path) -> None:
    edit(folder, SHOP, lambda d: collection(d, "login").update(fides_meta={"after": ["demo_shop.nowhere"]}))
    problem = find(problems_of(folder), SHOP, "demo_shop.login.fides_meta.after")
    assert "unknown collection 'demo_shop.nowhere'" in problem.message


# -- privacy.yml mappings ----------------------------------------------------------------------------


def test_dataset_without_mapping(folder: Path) -> None:
    edit(folder, "privacy.yml", lambda d: d["datasets"].pop("daycare_vendor"))
    problem = find(problems_of(folder), VENDOR, "daycare_vendor")
    assert "no mapping in privacy.yml" in problem.message


def test_mapping_for_undefined_dataset(folder: Path) -> None:
    edit(folder, "privacy.yml", lambda d: d["datasets"].update(ghost_dataset={"conn_id": "ghost_db"}))
    problem = find(problems_of(folder), "privacy.yml", "datasets.ghost_dataset")
    assert "no dataset file defines" in problem.message


def test_mapping_with_both_conn_id_and_email(folder: Path) -> None:
    edit(folder, "privacy.yml",
         lambda d: d["datasets"]["demo_shop"].update(email={"to": "privacy@vendor.example"}))
    problem = find(problems_of(folder), "privacy.yml", "datasets.demo_shop")
    assert "exactly one of 'conn_id'" in problem.message


def test_mapping_both_manual_and_a_connection(folder: Path) -> None:
    edit(folder, "privacy.yml", lambda d: d["datasets"]["demo_shop"].update(manual=True))
    problem = find(problems_of(folder), "privacy.yml", "datasets.demo_shop")
    assert "'manual: true' (a person answers)" in problem.message


def test_durations_are_iso_8601(folder: Path) -> None:
    edit(folder, "privacy.yml", lambda d: d.update(wait_timeout="P2DT12H"))
    assert load_config(folder).settings.wait_timeout.total_seconds() == 2.5 * 86400
    edit(folder, "privacy.yml", lambda d: d.update(wait_timeout="next week"))
    assert find(problems_of(folder), "privacy.yml", "wait_timeout")


# -- policies -----------------------------------------------------------------------------------------


def _rule(data: dict[str, Any], policy: int, rule: int) -> dict[str, Any]:
    return data["policy"][policy]["rules"][rule]


def test_unknown_masking_strategy(folder: Path) -> None:
    edit(folder, POLICIES, lambda d: _rule(d, 1, 0).update(masking_strategy={"strategy": "shred"}))
    problem = find(problems_of(folder), POLICIES, "policy[1].rules[0].masking_strategy.strategy")
    assert "unknown masking strategy 'shred'" in problem.message


def test_invalid_strategy_configuration(folder: Path) -> None:
    """string_rewrite needs a rewrite_value (rules[2] of the erasure policy is the string_rewrite one)."""
    edit(folder, POLICIES, lambda d: _rule(d, 1, 2)["masking_strategy"].update(configuration={}))
    problems = problems_of(folder)
    find(problems, POLICIES, "policy[1].rules[2].masking_strategy.configuration.rewrite_value")


def test_unknown_category_in_policy_target(folder: Path) -> None:
    edit(folder, POLICIES, lambda d: _rule(d, 1, 1).update(targets=["user.contact.phone_numbr"]))
    problem = find(problems_of(folder), POLICIES, "policy[1].rules[1].targets[0]")
    assert "user.contact.phone_numbr" in problem.message


def test_unknown_category_in_dataset_field(folder: Path) -> None:
    edit(folder, SHOP, lambda d: field_of(d, "customer", "name").update(data_categories=["user.nmae"]))
    problem = find(problems_of(folder), SHOP, "demo_shop.customer.name.data_categories")
    assert "user.nmae" in problem.message


def test_unknown_category_in_nested_dataset_field(folder: Path) -> None:
    def typo(data: dict[str, Any]) -> None:
        report_card = field_of(data, "children", "report_card")
        report_card["fields"][0]["data_categories"] = ["user.childrenz"]

    edit(folder, VENDOR, typo)
    problem = find(problems_of(folder), VENDOR, "daycare_vendor.children.report_card.grades.data_categories")
    assert "user.childrenz" in problem.message


def test_overlapping_erasure_targets(folder: Path) -> None:
    def add_overlap(data: dict[str, Any]) -> None:
        data["policy"].append({
            "key": "overlapping_policy",
            "rules": [
                {"key": "a", "action": "erasure", "targets": ["user.contact"],
                 "masking_strategy": {"strategy": "null_rewrite"}},
                {"key": "b", "action": "erasure", "targets": ["user.contact.email"],
                 "masking_strategy": {"strategy": "hash"}},
            ],
        })

    edit(folder, POLICIES, add_overlap)
    problem = find(problems_of(folder), POLICIES, "policy[4].rules")
    assert "'user.contact'" in problem.message
    assert "'user.contact.email'" in problem.message


def test_problems_in_two_files_are_both_reported(folder: Path) -> None:
    edit(folder, SHOP, lambda d: field_of(d, "customer", "name").update(data_categories=["user.nmae"]))
    edit(folder, POLICIES, lambda d: _rule(d, 1, 0).update(masking_strategy={"strategy": "shred"}))
    problems = problems_of(folder)
    find(problems, SHOP, "demo_shop.customer.name.data_categories")
    find(problems, POLICIES, "policy[1].rules[0].masking_strategy.strategy")


def test_invalid_yaml_does_not_hide_a_problem_in_another_file(folder: Path) -> None:
    (folder / VENDOR).write_text("dataset: [\n")
    edit(folder, POLICIES, lambda d: _rule(d, 1, 0).update(masking_strategy={"strategy": "shred"}))
    problems = problems_of(folder)
    assert any("invalid YAML" in p.message and "daycare_vendor.yml" in p.file for p in problems)
    find(problems, POLICIES, "policy[1].rules[0].masking_strategy.strategy")


# -- fides_meta and fidesops_meta ---------------------------------------------------------------------


def _rename_keys(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {(new if k == old else k): _rename_keys(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_keys(item, old, new) for item in node]
    return node


def test_demo_datasets_use_fides_meta() -> None:
    for path in (DEMO / "datasets").glob("*.yml"):
        text = path.read_text()
        assert "fides_meta" in text and "fidesops_meta" not in text, path.name


def test_fidesops_meta_is_accepted_like_fides_meta(folder: Path) -> None:
    expected = load_config(folder).plan
    for name in (SHOP, VENDOR):
        path = folder / name
        data = _rename_keys(yaml.safe_load(path.read_text()), "fides_meta", "fidesops_meta")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        assert "fides_meta:" not in path.read_text().replace("fidesops_meta:", "")
    plan = load_config(folder).plan
    assert plan.order == expected.order
    assert plan.inputs == expected.inputs
    assert plan.inputs[CollectionAddress("demo_shop", "customer")] != []


def test_a_collection_no_identity_reaches_is_refused(folder: Path) -> None:
    def orphan(data: dict[str, Any]) -> None:
        data["dataset"][0]["collections"].append({"name": "audit_log", "fields": [
            {"name": "id", "data_categories": ["system.operations"], "fides_meta": {"primary_key": True}}]})

    edit(folder, SHOP, orphan)
    problem = find(problems_of(folder), SHOP, "demo_shop.audit_log")
    assert "no identity reaches this collection" in problem.message


def test_a_nested_field_cannot_be_a_sql_query_input(folder: Path) -> None:
    def nest(data: dict[str, Any]) -> None:
        login = collection(data, "login")
        login["fields"].append({"name": "meta", "fields": [{
            "name": "customer_ref", "data_categories": ["user.unique_id"],
            "fides_meta": {"references": [{"dataset": "demo_shop", "field": "customer.id", "direction": "from"}]}}]})

    edit(folder, SHOP, nest)
    problem = find(problems_of(folder), SHOP, "demo_shop.login.meta.customer_ref")
    assert "nested field cannot be looked up in a sql dataset" in problem.message


def test_a_nested_field_can_locate_vendor_records(folder: Path) -> None:
    """Vendors are emailed, not queried: dotted locators are fine there."""
    def nest(data: dict[str, Any]) -> None:
        children = collection(data, "children")
        children["fields"].append({"name": "guardian", "fields": [{
            "name": "email", "data_categories": ["user.contact.email"], "fides_meta": {"identity": "email"}}]})

    edit(folder, VENDOR, nest)
    assert load_config(folder).graph.collections[CollectionAddress("daycare_vendor", "children")]


def test_a_storage_url_naming_an_unset_variable_is_refused(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIVACY_STORE_BUCKET", raising=False)
    edit(folder, "privacy.yml", lambda d: d.update(storage="s3://${PRIVACY_STORE_BUCKET}/requests"))
    assert "not set" in find(problems_of(folder), "privacy.yml", "storage").message


def test_airflow_home_in_storage_falls_back_to_airflows_default(folder: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    monkeypatch.delenv("PRIVACY_REQUESTS_STORAGE", raising=False)
    config = load_config(folder)
    assert config.storage == f"file://{Path('~/airflow').expanduser()}/privacy-requests"


def test_unsupported_fideslang_settings_are_refused_not_ignored(folder: Path) -> None:
    edit(folder, SHOP, lambda d: collection(d, "login").update(fides_meta={"skip_processing": True}))
    assert "not supported" in find(problems_of(folder), SHOP, "demo_shop.login.fides_meta.skip_processing").message


def test_the_same_erasure_target_in_two_rules_is_refused(folder: Path) -> None:
    def twice(data: dict[str, Any]) -> None:
        data["policy"][1]["rules"][3]["targets"].append("user.name")

    edit(folder, POLICIES, twice)
    problem = find(problems_of(folder), POLICIES, "policy[1].rules")
    assert "'user.name' and 'user.name' overlap" in problem.message


def test_a_folder_without_policies_is_refused(folder: Path) -> None:
    for path in (folder / "policies").glob("*.yml"):
        path.unlink()
    assert "no policy is defined" in find(problems_of(folder), "policies", "").message
