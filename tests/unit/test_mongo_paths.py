"""Where erasure masks a MongoDB document: nested fields, arrays of scalars and of objects, and only the
subject's elements of an array the request's values were matched in (arrayFilters); the configuration that
lets a MongoDB dataset be looked up by nested paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from include.privacy_requests.connectors.mongo_paths import targets, value_at
from include.privacy_requests.model.loading import load_config

DOC = {"_id": "a", "info": {"position": "CEO", "reports": ["Rob", "Sue"]},
       "contacts": [{"name": "June", "phone": "1"}, {"name": "Josh", "phone": "2"}],
       "thread": [{"comment": "c1", "who": "John"}, {"comment": "c2", "who": "Jane"}, {"comment": "c3", "who": "John"}]}


def test_a_nested_field_is_set_at_its_path() -> None:
    (target,), why = targets(DOC, "info.position", {}, {})
    assert (target.path, target.original, target.filters, why) == ("info.position", "CEO", [], None)
    assert value_at(DOC, target.position) == (True, "CEO")


def test_every_element_of_an_array_nobody_matched_is_the_subjects() -> None:
    found, _ = targets(DOC, "info.reports", {}, {})
    assert [(t.path, t.filters) for t in found] == [("info.reports.$[e0]", [{"e0": "Rob"}]),
                                                   ("info.reports.$[e1]", [{"e1": "Sue"}])]
    found, _ = targets(DOC, "contacts.name", {}, {})
    assert [(t.path, t.filters, t.position) for t in found] == [
        ("contacts.$[e0].name", [{"e0.name": "June"}], ("contacts", 0, "name")),
        ("contacts.$[e1].name", [{"e1.name": "Josh"}], ("contacts", 1, "name"))]


def test_only_the_matched_elements_of_a_matched_array_are_masked() -> None:
    found, _ = targets(DOC, "thread.who", {"thread.comment": ["c1", "c3"]}, {})
    assert [t.position for t in found] == [("thread", 0, "who"), ("thread", 2, "who")]
    assert found[0].path == found[1].path == "thread.$[e0].who"  # equal values share one identifier
    assert found[0].filters == [{"e0.comment": {"$in": ["c1", "c3"]}, "e0.who": "John"}]


def test_an_array_inside_an_array_is_left_with_a_reason() -> None:
    found, why = targets({"a": [{"b": [1, 2]}]}, "a.b", {}, {})
    assert found == [] and "array inside an array" in why


def test_a_mongo_dataset_may_be_looked_up_by_a_nested_path(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "include" / "privacy"
    folder = tmp_path / "privacy"
    shutil.copytree(demo, folder, ignore=shutil.ignore_patterns("seed"))
    (folder / "datasets" / "docs.yml").write_text(yaml.safe_dump({"dataset": [{"fides_key": "docs", "collections": [
        {"name": "feedback", "fields": [
            {"name": "_id", "fides_meta": {"primary_key": True}},
            {"name": "info", "fields": [
                {"name": "email", "data_categories": ["user.contact.email"], "fides_meta": {"identity": "email"}},
                {"name": "phone", "data_categories": ["user.contact.phone_number"]}]}]}]}]}))
    data = yaml.safe_load((folder / "privacy.yml").read_text())
    data["datasets"]["docs"] = {"mongo_conn_id": "mongo_docs"}
    (folder / "privacy.yml").write_text(yaml.safe_dump(data))
    config = load_config(folder)
    assert config.mapping("docs").kind == "mongo"


def test_a_batch_masks_unmatched_arrays_and_refuses_a_matched_one() -> None:
    """A batch has no single subject's values at hand: an array nobody was matched in is masked whole, an
    array the subjects were matched in cannot be split per subject, and the step says so."""
    import pytest

    from include.privacy_requests.connectors.mongo import _document_targets
    from include.privacy_requests.errors import DataSourceError
    from include.privacy_requests.model.graph import Collection, CollectionAddress
    from include.privacy_requests.model.masking import FieldMask, Masker, new_request_secrets

    masks = {"info.reports": FieldMask(Masker("null_rewrite", {}, new_request_secrets())),
             "thread.who": FieldMask(Masker("null_rewrite", {}, new_request_secrets()))}
    collection = Collection(CollectionAddress("docs", "c"), [])
    found = _document_targets(DOC, {"info.reports": masks["info.reports"]}, None, collection, ["thread.comment"])
    assert [t.path for _, t in found] == ["info.reports.$[e0]", "info.reports.$[e1]"]
    with pytest.raises(DataSourceError, match="'thread.who' is in an array matched by the request's values"):
        _document_targets(DOC, {"thread.who": masks["thread.who"]}, None, collection, ["thread.comment"])
