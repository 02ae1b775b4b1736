"""The dataset graph: edges from identities and references, the static traversal plan, erasure order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fideslang.models import Dataset

from include.privacy_requests.model.graph import (
    CollectionAddress,
    DatasetGraph,
    Input,
    TraversalPlan,
    build_graph,
)
from include.privacy_requests.model.loading import load_config

DEMO = Path(__file__).resolve().parents[2] / "include" / "privacy"
DS = "shop"


def fld(name: str, *, identity: str | None = None, ref: str | None = None, direction: str | None = None,
        dataset: str = DS) -> dict[str, Any]:
    """A field; ``ref`` is ``collection.field`` in ``dataset``, ``direction`` from|to|None (both ways)."""
    meta: dict[str, Any] = {}
    if identity:
        meta["identity"] = identity
    if ref:
        reference: dict[str, Any] = {"dataset": dataset, "field": ref}
        if direction:
            reference["direction"] = direction
        meta["references"] = [reference]
    result: dict[str, Any] = {"name": name, "data_categories": ["system.operations"]}
    if meta:
        result["fides_meta"] = meta
    return result


def coll(name: str, *fields: dict[str, Any], after: list[str] | None = None,
         erase_after: list[str] | None = None) -> dict[str, Any]:
    """A collection; ``after``/``erase_after`` hold ``dataset.collection`` keys."""
    result: dict[str, Any] = {"name": name, "fields": list(fields)}
    meta = {k: v for k, v in (("after", after), ("erase_after", erase_after)) if v}
    if meta:
        result["fides_meta"] = meta
    return result


def graph_of(*collections: dict[str, Any], key: str = DS) -> DatasetGraph:
    """The graph of one dataset; fails the test on any reported problem."""
    dataset = Dataset.model_validate({"fides_key": key, "collections": list(collections)})
    graph, problems = build_graph({key: dataset}, {key: f"datasets/{key}.yml"})
    assert problems == []
    return graph


def plan_of(*collections: dict[str, Any]) -> TraversalPlan:
    plan, cycles = graph_of(*collections).plan()
    assert cycles == []
    return plan


def a(name: str, dataset: str = DS) -> CollectionAddress:
    return CollectionAddress(dataset, name)


def before(plan: TraversalPlan, first: str, second: str) -> bool:
    return plan.order.index(a(first)) < plan.order.index(a(second))


# -- edges ----------------------------------------------------------------------------------------------


def test_identity_field_seeds_a_root_input() -> None:
    plan = plan_of(coll("customer", fld("id"), fld("email", identity="email")))
    assert plan.inputs[a("customer")] == [Input(None, "email", "email")]
    assert plan.upstream(a("customer")) == set()


def test_from_reference_makes_the_referencing_collection_downstream() -> None:
    plan = plan_of(
        coll("orders", fld("id"), fld("customer_id", ref="customer.id", direction="from")),
        coll("customer", fld("id"), fld("email", identity="email")),
    )
    assert plan.inputs[a("orders")] == [Input(a("customer"), "id", "customer_id")]
    assert plan.inputs[a("customer")] == [Input(None, "email", "email")]
    assert before(plan, "customer", "orders")


def test_to_reference_makes_the_referenced_collection_downstream() -> None:
    plan = plan_of(
        coll("address", fld("id")),
        coll("customer", fld("email", identity="email"), fld("address_id", ref="address.id", direction="to")),
    )
    assert plan.inputs[a("address")] == [Input(a("customer"), "address_id", "id")]
    assert plan.inputs[a("customer")] == [Input(None, "email", "email")]
    assert before(plan, "customer", "address")


@pytest.mark.parametrize("declared_on", ["reached_first", "reached_later"])
def test_bidirectional_reference_is_oriented_from_the_collection_reached_first(declared_on: str) -> None:
    """``profile`` is reached later than ``account`` (depth 2 vs 1), whichever side declares the reference."""
    account_tag = fld("tag", ref="profile.tag") if declared_on == "reached_first" else fld("tag")
    profile_tag = fld("tag", ref="account.tag") if declared_on == "reached_later" else fld("tag")
    plan = plan_of(
        coll("account", fld("email", identity="email"), account_tag),
        coll("login", fld("email", identity="email"), fld("id")),
        coll("profile", fld("login_id", ref="login.id", direction="from"), profile_tag),
    )
    assert plan.inputs[a("account")] == [Input(None, "email", "email")]
    assert Input(a("account"), "tag", "tag") in plan.inputs[a("profile")]
    assert before(plan, "account", "profile")
    assert plan.out_fields(a("account")) == {"tag"}
    assert plan.out_fields(a("profile")) == set()


def test_bidirectional_reference_between_two_seeds_is_oriented_one_way() -> None:
    plan = plan_of(
        coll("customer", fld("email", identity="email"), fld("phone")),
        coll("sms", fld("phone", identity="phone_number", ref="customer.phone")),
    )
    assert plan.inputs[a("customer")] == [Input(None, "email", "email")]
    assert plan.inputs[a("sms")] == [Input(None, "phone_number", "phone"), Input(a("customer"), "phone", "phone")]


def test_collection_with_three_parents_waits_for_all_of_them() -> None:
    """child is one hop from p1 but must wait for p3, three hops away."""
    plan = plan_of(
        coll("child", fld("a", ref="p1.id", direction="from"), fld("b", ref="p2.id", direction="from"),
             fld("c", ref="p3.id", direction="from")),
        coll("p1", fld("id"), fld("email", identity="email")),
        coll("p2", fld("id"), fld("p1_id", ref="p1.id", direction="from")),
        coll("p3", fld("id"), fld("p2_id", ref="p2.id", direction="from")),
    )
    assert sorted(plan.inputs[a("child")], key=lambda i: i.target_field) == [
        Input(a("p1"), "id", "a"), Input(a("p2"), "id", "b"), Input(a("p3"), "id", "c"),
    ]
    assert plan.upstream(a("child")) == {a("p1"), a("p2"), a("p3")}
    for parent in ("p1", "p2", "p3"):
        assert before(plan, parent, "child")


# -- ordering -------------------------------------------------------------------------------------------


def test_after_orders_collections_without_data_edges() -> None:
    """Alphabetically ``alpha`` would come first; ``after`` puts it behind ``beta``."""
    plan = plan_of(
        coll("alpha", fld("email", identity="email"), after=[f"{DS}.beta"]),
        coll("beta", fld("email", identity="email")),
    )
    assert before(plan, "beta", "alpha")
    assert plan.upstream(a("alpha")) == {a("beta")}
    assert plan.inputs[a("alpha")] == [Input(None, "email", "email")]


def test_upstream_joins_data_edges_and_after() -> None:
    plan = plan_of(
        coll("customer", fld("id"), fld("email", identity="email")),
        coll("audit", fld("email", identity="email")),
        coll("orders", fld("customer_id", ref="customer.id", direction="from"), after=[f"{DS}.audit"]),
    )
    assert plan.upstream(a("orders")) == {a("customer"), a("audit")}
    assert plan.upstream(a("customer")) == set()


def test_out_fields_are_the_fields_feeding_other_collections() -> None:
    plan = plan_of(
        coll("customer", fld("id"), fld("email", identity="email"), fld("address_id"), fld("name")),
        coll("orders", fld("customer_id", ref="customer.id", direction="from")),
        coll("address", fld("id", ref="customer.address_id", direction="from")),
    )
    assert plan.out_fields(a("customer")) == {"id", "address_id"}
    assert plan.out_fields(a("orders")) == set()


def test_cycle_of_after_is_reported() -> None:
    graph = graph_of(
        coll("alpha", fld("email", identity="email"), after=[f"{DS}.beta"]),
        coll("beta", fld("email", identity="email"), after=[f"{DS}.alpha"]),
    )
    _, cycles = graph.plan()
    assert len(cycles) == 1
    assert f"{DS}:alpha" in cycles[0] and f"{DS}:beta" in cycles[0]


def test_erasure_cycle() -> None:
    sound = graph_of(
        coll("alpha", fld("email", identity="email"), erase_after=[f"{DS}.beta"]),
        coll("beta", fld("email", identity="email")),
    )
    assert sound.erasure_cycle() == []
    looped = graph_of(
        coll("alpha", fld("email", identity="email"), erase_after=[f"{DS}.beta"]),
        coll("beta", fld("email", identity="email"), erase_after=[f"{DS}.alpha"]),
        coll("gamma", fld("email", identity="email")),
    )
    assert looped.erasure_cycle() == [a("alpha"), a("beta")]


def test_erasure_cycle_leaves_out_collections_only_waiting_on_it() -> None:
    """``gamma`` erases after ``alpha``, which is caught in a cycle; gamma itself is not in one."""
    graph = graph_of(
        coll("alpha", fld("email", identity="email"), erase_after=[f"{DS}.beta"]),
        coll("beta", fld("email", identity="email"), erase_after=[f"{DS}.alpha"]),
        coll("gamma", fld("email", identity="email"), erase_after=[f"{DS}.alpha"]),
    )
    assert graph.erasure_cycle() == [a("alpha"), a("beta")]


# -- reachability -----------------------------------------------------------------------------------------


def _two_identities() -> TraversalPlan:
    return plan_of(
        coll("customer", fld("id"), fld("email", identity="email")),
        coll("orders", fld("customer_id", ref="customer.id", direction="from")),
        coll("sms", fld("id"), fld("phone", identity="phone_number")),
        coll("sms_log", fld("sms_id", ref="sms.id", direction="from")),
        coll("orphan", fld("id"), fld("note")),
    )


def test_unreachable_names_collections_of_identities_not_supplied() -> None:
    plan = _two_identities()
    assert set(plan.unreachable({"email"})) == {a("sms"), a("sms_log"), a("orphan")}
    assert set(plan.unreachable({"phone_number"})) == {a("customer"), a("orders"), a("orphan")}


def test_collection_without_a_path_from_any_identity_is_always_unreachable() -> None:
    plan = _two_identities()
    for keys in (set(), {"email"}, {"phone_number"}, {"email", "phone_number"}):
        assert a("orphan") in plan.unreachable(keys)
    assert plan.unreachable({"email", "phone_number"}) == [a("orphan")]
    assert a("orphan") in plan.order and plan.inputs[a("orphan")] == []


def test_identity_keys_of_the_graph() -> None:
    graph = graph_of(coll("customer", fld("email", identity="email")), coll("sms", fld("p", identity="phone_number")))
    assert graph.identity_keys == {"email", "phone_number"}


# -- the demo configuration ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_plan() -> TraversalPlan:
    return load_config(DEMO).plan


def test_demo_address_has_inputs_from_three_collections(demo_plan: TraversalPlan) -> None:
    address = a("address", "demo_shop")
    sources = {i.source for i in demo_plan.inputs[address]}
    assert sources == {a("customer", "demo_shop"), a("orders", "demo_shop"), a("payment_card", "demo_shop")}
    assert {(i.source_field, i.target_field) for i in demo_plan.inputs[address]} == {
        ("address_id", "id"), ("shipping_address_id", "id"), ("billing_address_id", "id"),
    }
    for source in sources:
        assert demo_plan.order.index(source) < demo_plan.order.index(address)


def test_demo_children_come_from_daycare_customer(demo_plan: TraversalPlan) -> None:
    children = a("children", "daycare_vendor")
    assert demo_plan.inputs[children] == [Input(a("daycare_customer", "daycare_vendor"), "id", "parent_id")]
    assert demo_plan.unreachable({"email"}) == []
