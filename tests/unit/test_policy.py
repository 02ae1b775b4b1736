"""Policies: hierarchical category matching, the fields an access returns, the fields an erasure masks."""

from __future__ import annotations

from typing import Any

import pytest

from include.privacy_requests.model.graph import Collection, CollectionAddress, FieldSpec
from include.privacy_requests.model.policy import Policy, category_matches


@pytest.mark.parametrize(
    ("category", "target", "expected"),
    [
        ("user.contact.email", "user.contact", True),
        ("user.contact", "user.contact", True),
        ("user.contact.address.city", "user.contact", True),
        ("user.name", "user", True),
        ("user.contactless", "user.contact", False),
        ("user.contact", "user.contact.email", False),
        ("user", "user.name", False),
        ("system.operations", "user", False),
        ("username", "user", False),
    ],
)
def test_category_matches_by_whole_segments(category: str, target: str, expected: bool) -> None:
    assert category_matches(category, target) is expected


def customer() -> Collection:
    """A collection with contact fields, a name, an operations id and a nested object."""
    fields = [
        FieldSpec("id", ("system.operations",), primary_key=True),
        FieldSpec("email", ("user.contact.email",)),
        FieldSpec("phone", ("user.contact.phone_number",)),
        FieldSpec("name", ("user.name",)),
        FieldSpec("newsletter", ("user.contactless",)),
        FieldSpec("profile", ("user.name",), is_object=True),
        FieldSpec("profile.nickname", ("user.name",)),
    ]
    return Collection(CollectionAddress("shop", "customer"), fields)


def rule(key: str, action: str, targets: list[str], strategy: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"key": key, "action": action, "targets": targets}
    if strategy:
        result["masking_strategy"] = {"strategy": strategy}
    return result


def policy(*rules: dict[str, Any]) -> Policy:
    return Policy.model_validate({"key": "test_policy", "rules": list(rules)})


def test_access_fields_are_the_leaf_fields_matching_a_target() -> None:
    access = policy(rule("a", "access", ["user.contact"]), rule("b", "access", ["user.name"]))
    paths = [f.path for f in access.access_fields(customer())]
    assert paths == ["email", "phone", "name", "profile.nickname"]


def test_access_fields_ignore_erasure_rules() -> None:
    erasure_only = policy(rule("e", "erasure", ["user"], "null_rewrite"))
    assert erasure_only.access_fields(customer()) == []


def test_erasure_fields_with_their_strategy() -> None:
    erasure = policy(rule("names", "erasure", ["user.name"], "null_rewrite"),
                     rule("access", "access", ["user"]))
    fields = erasure.erasure_fields(customer())
    assert {path: spec.strategy for path, spec in fields.items()} == {
        "name": "null_rewrite", "profile.nickname": "null_rewrite",
    }


def test_last_erasure_rule_targeting_a_field_wins() -> None:
    erasure = policy(rule("contact", "erasure", ["user.contact"], "null_rewrite"),
                     rule("email", "erasure", ["user.contact.email"], "hash"))
    fields = erasure.erasure_fields(customer())
    assert {path: spec.strategy for path, spec in fields.items()} == {"email": "hash", "phone": "null_rewrite"}

    reversed_order = policy(rule("email", "erasure", ["user.contact.email"], "hash"),
                            rule("contact", "erasure", ["user.contact"], "null_rewrite"))
    assert reversed_order.erasure_fields(customer())["email"].strategy == "null_rewrite"


def test_policy_rule_lists() -> None:
    mixed = policy(rule("a", "access", ["user"]), rule("e", "erasure", ["user.name"], "null_rewrite"))
    assert [r.key for r in mixed.access_rules] == ["a"]
    assert [r.key for r in mixed.erasure_rules] == ["e"]
    assert mixed.display_name == "test_policy"


def test_due_dates_follow_the_regulation() -> None:
    from datetime import UTC, datetime

    from include.privacy_requests.request.statutory_clock import due_date  # the one due date (extensions: its tests)

    def policy(**extra: object) -> Policy:
        return Policy.model_validate({"key": "p", "rules": [{"key": "r", "action": "access", "targets": ["user"]}],
                                      **extra})

    received = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
    assert due_date(policy(), received) == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)  # one calendar month
    assert due_date(policy(), datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2027, 1, 15, tzinfo=UTC)
    assert due_date(policy(regulation="ccpa"), received) == datetime(2026, 3, 17, 9, 30, tzinfo=UTC)
    assert due_date(policy(due_days=10), received) == datetime(2026, 2, 10, 9, 30, tzinfo=UTC)
