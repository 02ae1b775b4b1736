"""The conf a person's trigger form sends (one field per identity type) and the one REST and CLI callers send
(the ``identity`` object): both accepted, both at once refused naming the conflict, at least one value."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from include.privacy_requests.errors import ConfigError, RequestError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.request.request import conf_identity, parse_conf
from include.privacy_requests.request.retention import identity_values, scrub

TYPES = {"email", "phone_number"}
# What Airflow's form sends when a person picks a policy and types an email: empty fields as null.
FORM = {"policy": "default_access_policy", "email": "jane@example.com", "phone_number": None, "request_id": None,
        "identity": None}


def test_the_form_fields_become_the_identity() -> None:
    assert parse_conf(FORM, TYPES).identity == {"email": "jane@example.com"}
    both = {**FORM, "phone_number": " +15555550100 "}
    assert parse_conf(both, TYPES).identity == {"email": "jane@example.com", "phone_number": "+15555550100"}
    assert parse_conf({**FORM, "phone_number": "  "}, TYPES).identity == {"email": "jane@example.com"}


def test_the_identity_object_is_still_accepted() -> None:
    conf = {"policy": "p", "identity": {"phone_number": "+15555550100"}}
    assert parse_conf(conf, TYPES).identity == {"phone_number": "+15555550100"}
    assert parse_conf({**conf, "email": None, "phone_number": ""}, TYPES).identity == {"phone_number": "+15555550100"}


def test_both_at_once_is_refused_naming_the_conflict() -> None:
    with pytest.raises(RequestError) as error:
        parse_conf({**FORM, "identity": {"email": "john@example.com"}}, TYPES)
    message = str(error.value)
    assert "either as the 'identity' object or as the fields email, phone_number, not both" in message
    assert "got 'identity' and 'email'" in message
    assert "jane@example.com" not in message and "john@example.com" not in message


@pytest.mark.parametrize("conf", [
    {"policy": "p"}, {**FORM, "email": None}, {**FORM, "email": " "}, {"policy": "p", "identity": None},
])
def test_at_least_one_identity_value_is_required(conf: dict) -> None:
    with pytest.raises(RequestError, match=r"give at least one identity value \(email, phone_number\)"):
        parse_conf(conf, TYPES)


@pytest.mark.parametrize(("value", "says"), [
    ("a" * 300 + "@example.com", "longer than 254"), ("jane\x00@example.com", "control character"),
    ("not-an-email", "not an email address"), (5, "string"),
])
def test_a_bad_field_is_refused_as_the_object_would_be(value: object, says: str) -> None:
    with pytest.raises(RequestError, match=says):
        parse_conf({**FORM, "email": value}, TYPES)


def test_pages_and_retention_find_the_identity_in_either_form() -> None:
    assert conf_identity(FORM, TYPES) == {"email": "jane@example.com"}
    assert conf_identity({"identity": {"email": "a@example.com", "x": 5}}, TYPES) == {"email": "a@example.com"}
    assert conf_identity(["junk"], TYPES) == {}
    assert identity_values(FORM, TYPES) == {"jane@example.com"}
    scrubbed = scrub(FORM, identity_values(FORM, TYPES), "[removed after 90 days]")
    assert scrubbed["email"] == "[removed after 90 days]" and identity_values(scrubbed, TYPES) == set()


def test_an_identity_type_may_not_be_named_like_a_conf_key(tmp_path: Path) -> None:
    """Its form field would be the conf's own key: refused when the configuration loads, naming where."""
    folder = tmp_path / "privacy"
    shutil.copytree(Path(__file__).resolve().parents[2] / "include" / "privacy", folder,
                    ignore=shutil.ignore_patterns("seed"))
    shop = folder / "datasets" / "demo_shop.yml"
    shop.write_text(shop.read_text().replace("identity: phone_number", "identity: policy"))
    with pytest.raises(ConfigError) as error:
        load_config(folder)
    [problem] = [p for p in error.value.problems if "trigger conf" in p.message]
    assert (problem.file, problem.field) == ("datasets/demo_shop.yml",
                                             "demo_shop.sms_subscription.phone.fides_meta.identity")
