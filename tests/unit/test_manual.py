"""Manual collections: the entry form built from the fields, and the checks on what a person enters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.connectors.manual import (
    ManualConnector,
    access_question,
    check_rows,
    entry_form,
    erasure_question,
)
from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.graph import Collection, CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.policy import MaskingStrategySpec
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.asking import Question
from include.privacy_requests.request.request import open_request

HUMAN = Path(__file__).resolve().parents[1] / "e2e" / "human_steps" / "datasets"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> PrivacyConfig:
    """The paper archive of the end-to-end tests, loaded beside the demo configuration."""
    import shutil

    folder = tmp_path_factory.mktemp("config") / "privacy"
    shutil.copytree(Path(__file__).resolve().parents[2] / "include" / "privacy", folder)
    shutil.copy(HUMAN / "paper_archive.yml", folder / "datasets")
    settings = (folder / "privacy.yml").read_text()
    (folder / "privacy.yml").write_text(settings.replace("\ndata_categories:",
                                                         "\n  paper_archive: {manual: true}\ndata_categories:"))
    config = load_config(folder)
    assert config.mapping("paper_archive").kind == "manual"
    return config


@pytest.fixture(scope="module")
def forms(archive: PrivacyConfig) -> Collection:
    return archive.graph.collections[CollectionAddress("paper_archive", "membership_form")]


def test_a_dry_run_asks_nobody_to_look_a_subject_up(archive: PrivacyConfig, forms: Collection,
                                                     tmp_path: Path) -> None:
    """A dry run plans the look-up (fields and how many values, never the values) instead of asking a person."""
    conf = {"policy": "default_erasure_policy", "identity": {"email": "jane@example.com"}, "request_id": "dry",
            "dry_run": True}
    request = open_request(archive, conf, "run-dry", tmp_path, Fernet.generate_key().decode())
    asked: list[Question] = []

    def ask(question: Question) -> NoReturn:
        asked.append(question)
        raise AssertionError("a dry run asked a person")

    found = ManualConnector(ask=ask).retrieve(request, forms, {"email": ["jane@example.com"]})
    assert asked == [] and list(found.rows) == [] and found.status == "planned"
    ManualConnector(ask=ask).retrieve(request, forms, {"email": ["jane@example.com"]})  # a cleared task
    (planned,) = [e for e in request.store.events() if e["event"] == "manual_lookup_planned"]
    assert planned["collection"] == "paper_archive:membership_form" and planned["values"] == {"email": 1}
    assert "jane" not in json.dumps(planned)


def test_the_form_has_one_list_of_records_with_the_collections_fields(forms: Collection) -> None:
    schema = entry_form(forms)["rows"]
    assert schema["default"] == []
    assert schema["type"] == "array"
    assert schema["items"]["properties"]["order_number"] == {"type": ["integer", "null"]}
    assert set(schema["items"]["properties"]) == {"member_number", "email", "name", "order_number", "signed_on"}
    assert schema["items"]["additionalProperties"] is False


def test_entered_values_are_cast_to_the_declared_types(forms: Collection) -> None:
    rows = check_rows(forms, [{"member_number": 1001, "order_number": "99", "name": None},
                              {"order_number": 12.0}])
    assert rows == [{"member_number": "1001", "order_number": 99, "name": None}, {"order_number": 12}]
    assert check_rows(forms, []) == []


@pytest.mark.parametrize(("answer", "message"), [
    ({"email": "x"}, "must be a list of objects, not dict"),
    (["jane"], "record 1 is not an object"),
    ([{}, {"email": "a@b.c", "shoe_size": 9}], "record 2 has field(s) the collection does not have: shoe_size"),
    ([{"order_number": "ninety-nine"}], "record 1, field 'order_number': the value is not a valid integer"),
    ([{"order_number": 3.7}], "field 'order_number': the value is not a valid integer (not a whole number)"),
    ([{"order_number": True}], "field 'order_number': the value is not a valid integer (true/false is not"),
    ([{"name": {"first": "Jane"}}], "field 'name': the value is not a valid string (an object is not a string)"),
])
def test_bad_entries_are_refused_naming_the_record_and_field(forms: Collection, answer: object,
                                                             message: str) -> None:
    """The error goes to the task log and report.json: it names the record and field, never what was typed."""
    with pytest.raises(RequestError, match="paper_archive:membership_form") as info:
        check_rows(forms, answer)
    assert message in str(info.value)
    assert "ninety" not in str(info.value) and "Jane" not in str(info.value)


def test_the_questions_say_what_to_look_for_and_what_to_erase(forms: Collection) -> None:
    asked = access_question(forms, {"email": ["jane@example.com"]})
    assert "- `email`: jane@example.com" in asked
    erase = erasure_question(forms, [{"member_number": "M-1", "name": "Jane"}],
                             {"name": MaskingStrategySpec(strategy="null_rewrite")})
    assert "- `name`: clear it (empty or null)" in erase
    assert "- member_number = M-1" in erase
