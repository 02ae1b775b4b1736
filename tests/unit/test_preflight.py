"""The preflight's choice of columns must stay the erasure's: both are checked on the same collections."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from include.privacy_requests.connectors.base import ErasureWork
from include.privacy_requests.connectors.preflight import erasure_preflight, masked_fields
from include.privacy_requests.connectors.sql import field_masks
from include.privacy_requests.model.graph import Collection, CollectionAddress, FieldSpec
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.masking import new_request_secrets
from include.privacy_requests.model.policy import Policy
from tests.support.paths import DEMO_CONFIG

EVERY_KIND = Collection(CollectionAddress("ds", "people"), [
    FieldSpec("id", ("user.unique_id",), primary_key=True, data_type="integer"),
    FieldSpec("email", ("user.contact.email",), identity="email", data_type="string"),
    FieldSpec("name", ("user.name",)),
    FieldSpec("age", ("user.demographic.age_range",), data_type="integer"),
    FieldSpec("born", ("user.demographic.date_of_birth",), data_type="integer"),
    FieldSpec("phone", ("user.contact.phone_number",), read_only=True),
    FieldSpec("address", ("user.contact.address",), is_object=True),
    FieldSpec("address.city", ("user.contact.address.city",)),
])


def policy(*rules: tuple[str, dict[str, Any]]) -> Policy:
    return Policy.model_validate({"key": "p", "rules": [
        {"key": f"r{i}", "action": "erasure", "targets": [target], "masking_strategy": spec}
        for i, (target, spec) in enumerate(rules)]})


def erased_by_execution(chosen: Policy, collection: Collection) -> set[str]:
    request = SimpleNamespace(policy=chosen, store=SimpleNamespace(get=lambda name: new_request_secrets()))
    work = ErasureWork(request, collection, chosen.erasure_fields(collection), iter)  # type: ignore[arg-type]
    return set(field_masks(work))


def test_masked_fields_are_the_fields_erasure_masks() -> None:
    chosen = policy(("user", {"strategy": "hash"}), ("user.demographic.date_of_birth", {"strategy": "null_rewrite"}))
    # id: primary key; age: integer data_type skips a text strategy; phone: read-only; address.city: nested.
    assert set(masked_fields(chosen, EVERY_KIND)) == {"email", "name", "born"}
    assert set(masked_fields(chosen, EVERY_KIND)) == erased_by_execution(chosen, EVERY_KIND)


def test_masked_fields_agree_with_erasure_on_every_demo_policy() -> None:
    config = load_config(DEMO_CONFIG)
    for chosen in config.policies.values():
        for collection in config.graph.collections.values():
            assert set(masked_fields(chosen, collection)) == erased_by_execution(chosen, collection), (
                chosen.key, collection.address)


def test_a_policy_without_erasure_rules_connects_to_nothing() -> None:
    config = load_config(DEMO_CONFIG)

    def engine_for(conn_id: str) -> Any:
        raise AssertionError(f"connected to {conn_id}")

    assert erasure_preflight(config, config.policies["default_access_policy"], engine_for) == []
