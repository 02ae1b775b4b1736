"""MongoDB through the engine, against SecantusDB (the MongoDB wire protocol, started on a free loopback port)
with a real PostgreSQL: fidesops' example, its PostgreSQL customer and its MongoDB documents (customer
details, feedback, internal profiles, conversations), seeded with the values of fidesops' seed data, must give
the rows fidesops' own tests expect (tests/ops/integration_tests/test_mongo_task.py:
test_object_querying_mongo, test_array_querying_mongo). Then erasure masks nested fields and only the subject's
elements of a matched array, proves it by reading back, and a delete rule deletes documents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pymongo
import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, text

from include.privacy_requests.connectors.mongo import MongoConnector
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.lifecycle import start_request
from include.privacy_requests.request.request import PrivacyRequest, open_request
from include.privacy_requests.steps.collection_steps import access_collection, erase_collection
from tests.support.mongo_server import mongo_server

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
SEED_EMAIL = "customer-1@example.com"


@pytest.fixture(scope="module")
def mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pymongo.MongoClient]:
    with mongo_server(tmp_path_factory.mktemp("mongo") / "secantus.log") as uri:
        client = pymongo.MongoClient(uri)
        yield client
        client.close()


@pytest.fixture
def pg() -> Iterator[Engine]:
    import secrets

    name = f"warehouses_{secrets.token_hex(5)}"
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine = create_engine(f"{PG}/{name}")
    with engine.begin() as conn:  # fidesops' postgres_example customers (the columns this example reaches)
        conn.execute(text("CREATE TABLE customer (id INTEGER PRIMARY KEY, email VARCHAR(255), name VARCHAR(255))"))
        conn.execute(text("INSERT INTO customer VALUES (1, 'customer-1@example.com', 'John Customer'), "
                          "(2, 'customer-2@example.com', 'Jill Customer'), (3, 'jane@example.com', 'Jane Customer')"))
        # A table reached from MongoDB: a reference out of the document store into SQL.
        conn.execute(text("CREATE TABLE loyalty (id INTEGER PRIMARY KEY, internal_customer_id VARCHAR(20), "
                          "points INTEGER, nickname VARCHAR(50))"))
        conn.execute(text("INSERT INTO loyalty VALUES (1, 'cust_001', 120, 'Johnny'), (2, 'cust_002', 80, 'Jill')"))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def seed(db: Any) -> None:
    """The documents of fidesops' mongo-init.js that this example reaches, with their values."""
    db.customer_details.insert_many([
        {"customer_id": 1, "gender": "male", "birthday": datetime(1988, 1, 10),
         "workplace_info": {"employer": "Mountain Baking Company", "position": "Chief Strategist",
                            "direct_reports": ["Robbie Margo", "Sully Hunter"]},
         "emergency_contacts": [{"name": "June Customer", "relationship": "mother", "phone": "444-444-4444"},
                                {"name": "Josh Customer", "relationship": "brother", "phone": "111-111-111"}],
         "children": ["Christopher Customer", "Courtney Customer"],
         "comments": [{"comment_id": "com_0001"}, {"comment_id": "com_0003"}, {"comment_id": "com_0005"}]},
        {"customer_id": 2, "gender": "female", "birthday": datetime(1985, 3, 5),
         "workplace_info": {"employer": "Incline Software Company", "position": "Software Engineer",
                            "direct_reports": ["Langdon Jeanne", "Dorothy Faron"]},
         "emergency_contacts": [{"name": "Jesse Customer", "relationship": "spouse", "phone": "111-111-1111"}],
         "children": ["Connie Customer"]},
    ])
    db.customer_feedback.insert_many([
        {"customer_information": {"email": "customer-1@example.com", "phone": "333-333-3333",
                                  "internal_customer_id": "cust_001"}, "rating": 3},
        {"customer_information": {"email": "customer-2@example.com", "phone": "111-111-1111",
                                  "internal_customer_id": "cust_002"}, "rating": 5},
    ])
    db.internal_customer_profile.insert_many([
        {"customer_identifiers": {"internal_id": "cust_001"}, "derived_interests": ["marketing", "food"]},
        {"customer_identifiers": {"internal_id": "cust_003", "derived_emails": ["jane1@example.com",
                                                                                 "jane@example.com"]},
         "derived_interests": ["interior design", "travel", "photography"]},
    ])
    db.conversations.insert_many([
        {"thread": [{"comment": "com_0001", "message": "hello, testing in-flight chat feature", "chat_name": "John C"},
                    {"comment": "com_0002", "message": "yep, got your message", "chat_name": "Jane C"}]},
        {"thread": [{"comment": "com_0003", "message": "can I borrow your headphones?", "chat_name": "John C"},
                    {"comment": "com_0004", "message": "no, sorry I'm using them.", "chat_name": "Jane C"},
                    {"comment": "com_0005", "message": "did you bring anything to read?", "chat_name": "John C"},
                    {"comment": "com_0006", "message": "try the brochure.", "chat_name": "Jane C"}]},
        {"thread": [{"comment": "com_0007", "message": "prepare for take-off", "chat_name": "Pilot 1"}]},
    ])


def f(name: str, categories: list[str] | None = None, **meta: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "fidesops_meta": meta}
    if categories:
        result["data_categories"] = categories
    return result


def obj(name: str, fields: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {"name": name, "fidesops_meta": meta, "fields": fields}


def datasets() -> list[dict[str, Any]]:
    """fidesops' example, as its two dataset files describe these collections (fidesops_meta, nested fields,
    object[] and string[] fields, references in both directions between the two)."""
    postgres = {"fides_key": "postgres_example_test_dataset", "collections": [
        {"name": "customer", "fields": [
            f("id", ["user.unique_id"], primary_key=True, data_type="integer"),
            f("email", ["user.contact.email"], identity="email", data_type="string"),
            f("name", ["user.name"], data_type="string")]},
        {"name": "loyalty", "fields": [
            f("id", ["system.operations"], primary_key=True, data_type="integer"),
            f("internal_customer_id", ["system.operations"], data_type="string", references=[
                {"dataset": "mongo_test", "field": "customer_feedback.customer_information.internal_customer_id",
                 "direction": "from"}]),
            f("points", ["system.operations"], data_type="integer"),
            f("nickname", ["user.name"], data_type="string")]}]}
    mongo = {"fides_key": "mongo_test", "collections": [
        {"name": "customer_details", "fields": [
            f("_id", ["system.operations"], primary_key=True),
            f("customer_id", ["user.unique_id"], references=[
                {"dataset": "postgres_example_test_dataset", "field": "customer.id", "direction": "from"}]),
            f("gender", ["user.gender"], data_type="string"),
            f("birthday", ["user.date_of_birth"], data_type="string"),
            obj("workplace_info", [f("employer", data_type="string"),
                                   f("position", ["user.job_title"], data_type="string"),
                                   f("direct_reports", ["user.name"], data_type="string[]")], data_type="object"),
            obj("emergency_contacts", [f("name", ["user.name"], data_type="string"),
                                       f("relationship", data_type="string"),
                                       f("phone", ["user.contact.phone_number"], data_type="string")],
                data_type="object[]"),
            f("children", ["user.childrens"], data_type="string[]"),
            obj("comments", [f("comment_id", data_type="string", references=[
                {"dataset": "mongo_test", "field": "conversations.thread.comment", "direction": "to"}])],
                data_type="object[]")]},
        {"name": "internal_customer_profile", "fields": [
            f("_id", ["system.operations"], primary_key=True, data_type="object_id"),
            obj("customer_identifiers", [
                f("internal_id", data_type="string", references=[
                    {"dataset": "mongo_test", "field": "customer_feedback.customer_information.internal_customer_id",
                     "direction": "from"}]),
                f("derived_emails", ["user"], data_type="string[]", identity="email")]),
            f("derived_interests", ["user"], data_type="string[]")]},
        {"name": "customer_feedback", "fields": [
            f("_id", ["system.operations"], primary_key=True, data_type="object_id"),
            obj("customer_information", [
                f("email", identity="email", data_type="string"),
                f("phone", ["user.contact.phone_number"], data_type="string"),
                f("internal_customer_id", ["system.operations"], data_type="string")]),
            f("rating", ["user"], data_type="integer")]},
        {"name": "conversations", "fields": [
            f("_id", ["system.operations"], primary_key=True, data_type="object_id"),
            obj("thread", [f("comment", data_type="string"), f("message", data_type="string"),
                           f("chat_name", ["user.name"], data_type="string")], data_type="object[]")]},
    ]}
    return [postgres, mongo]


ERASE_RULES = [
    {"key": "names", "action": "erasure", "targets": ["user.name"], "masking_strategy": {"strategy": "null_rewrite"}},
    {"key": "phones", "action": "erasure", "targets": ["user.contact.phone_number"],
     "masking_strategy": {"strategy": "hash"}},
    {"key": "children", "action": "erasure", "targets": ["user.childrens"],
     "masking_strategy": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "REDACTED"}}},
]
DELETE_RULES = [{"key": "delete_details", "action": "erasure", "targets": ["user.gender"],
                 "masking_strategy": {"strategy": "delete"}}]


def config_for(tmp_path: Path) -> PrivacyConfig:
    folder = tmp_path / "privacy"
    (folder / "datasets").mkdir(parents=True)
    (folder / "policies").mkdir()
    (folder / "privacy.yml").write_text(yaml.safe_dump({
        "organization": "Test", "storage": f"file://{tmp_path / 'storage'}",
        # fidesops' names of two categories fideslang has since moved under user.demographic
        "data_categories": ["user.gender", "user.date_of_birth"],
        "datasets": {"postgres_example_test_dataset": {"conn_id": "postgres_example"},
                     "mongo_test": {"mongo_conn_id": "mongo_example"}}}))
    for data in datasets():
        (folder / "datasets" / f"{data['fides_key']}.yml").write_text(yaml.safe_dump({"dataset": [data]}))
    (folder / "policies" / "policies.yml").write_text(yaml.safe_dump({"policy": [
        {"key": "access", "rules": [{"key": "all", "action": "access", "targets": ["user"]}]},
        {"key": "erase", "rules": ERASE_RULES}, {"key": "delete", "rules": DELETE_RULES}]}))
    return load_config(folder)


@pytest.fixture
def example(tmp_path: Path, mongo: pymongo.MongoClient, pg: Engine, request: pytest.FixtureRequest):
    name = f"warehouses_{request.node.name[:30].replace('[', '_').replace(']', '')}"
    mongo.drop_database(name)
    seed(mongo[name])
    config = config_for(tmp_path)

    def connector_for(dataset: str):
        return MongoConnector(mongo[name]) if dataset == "mongo_test" else SqlConnector(pg)

    yield config, connector_for, mongo[name], pg
    mongo.drop_database(name)


def run(config: PrivacyConfig, tmp_path: Path, connector_for, policy: str, request_id: str) -> PrivacyRequest:
    request = open_request(config, {"policy": policy, "identity": {"email": SEED_EMAIL}, "request_id": request_id},
                           f"run-{request_id}", tmp_path / "storage", Fernet.generate_key().decode())
    start_request(request, f"run-{request_id}", "2026-12-04T00:00:00+00:00")
    for address in config.plan.order:
        access_collection(request, address, connector_for)
    return request


def found(request: PrivacyRequest, dataset: str, collection: str) -> list[dict[str, Any]]:
    from include.privacy_requests.store import layout

    return list(request.store.read_rows(layout.rows(CollectionAddress(dataset, collection))))


def test_fidesops_postgres_and_mongo_example_gives_fidesops_expected_rows(example, tmp_path: Path) -> None:
    config, connector_for, _, _ = example
    request = run(config, tmp_path, connector_for, "access", "acc-1")
    (details,) = found(request, "mongo_test", "customer_details")
    # test_object_querying_mongo: reached from PostgreSQL's customer.id
    assert details["gender"] == "male" and str(details["birthday"]).startswith("1988-01-10")
    assert details["children"] == ["Christopher Customer", "Courtney Customer"]
    assert [{k: c[k] for k in ("name", "phone")} for c in details["emergency_contacts"]] == [
        {"name": "June Customer", "phone": "444-444-4444"}, {"name": "Josh Customer", "phone": "111-111-111"}]
    assert details["workplace_info"]["position"] == "Chief Strategist"
    assert details["workplace_info"]["direct_reports"] == ["Robbie Margo", "Sully Hunter"]
    # reached through a nested identity
    (feedback,) = found(request, "mongo_test", "customer_feedback")
    assert feedback["customer_information"]["phone"] == "333-333-3333"
    # a nested field joined with a nested field of another collection
    (profile,) = found(request, "mongo_test", "internal_customer_profile")
    assert profile["derived_interests"] == ["marketing", "food"]
    # an array of objects reached from another array of objects (comments -> thread.comment)
    threads = found(request, "mongo_test", "conversations")
    assert sorted(len(t["thread"]) for t in threads) == [2, 4]
    # out of MongoDB into SQL
    assert [r["nickname"] for r in found(request, "postgres_example_test_dataset", "loyalty")] == ["Johnny"]


def test_erasure_masks_nested_fields_and_only_the_subjects_array_elements(example, tmp_path: Path) -> None:
    config, connector_for, db, pg = example
    request = run(config, tmp_path, connector_for, "erase", "era-1")
    outcomes = {a: erase_collection(request, a, connector_for, try_number=1) for a in config.plan.order}
    by_name = {a.collection: o for a, o in outcomes.items()}
    assert by_name["conversations"].masked == 2 and by_name["conversations"].detail["verified"] == 2
    assert by_name["customer_details"].masked == 1 and by_name["customer_feedback"].masked == 1

    threads = {t["thread"][0]["comment"]: [e.get("chat_name") for e in t["thread"]] for t in db.conversations.find()}
    assert threads == {"com_0001": [None, "Jane C"], "com_0003": [None, "Jane C", None, "Jane C"],
                       "com_0007": ["Pilot 1"]}  # only John's (the subject's) comments
    details = db.customer_details.find_one({"customer_id": 1})
    assert details["children"] == ["REDACTED", "REDACTED"]
    assert details["workplace_info"] == {"employer": "Mountain Baking Company", "position": "Chief Strategist",
                                         "direct_reports": [None, None]}
    assert [c["name"] for c in details["emergency_contacts"]] == [None, None]
    phones = [c["phone"] for c in details["emergency_contacts"]]
    assert all(len(p) == 64 for p in phones) and phones[0] != phones[1]
    assert db.customer_details.find_one({"customer_id": 2})["children"] == ["Connie Customer"]
    feedback = db.customer_feedback.find_one({"customer_information.email": SEED_EMAIL})
    assert len(feedback["customer_information"]["phone"]) == 64
    assert db.customer_feedback.find_one({"rating": 5})["customer_information"]["phone"] == "111-111-1111"
    with pg.connect() as conn:
        assert conn.execute(text("SELECT name FROM customer ORDER BY id")).scalars().all() == [
            None, "Jill Customer", "Jane Customer"]
        assert conn.execute(text("SELECT nickname FROM loyalty ORDER BY id")).scalars().all() == [None, "Jill"]


def test_a_delete_rule_deletes_the_documents_and_proves_they_are_gone(example, tmp_path: Path) -> None:
    config, connector_for, db, _ = example
    request = run(config, tmp_path, connector_for, "delete", "del-1")
    outcome = erase_collection(request, CollectionAddress("mongo_test", "customer_details"), connector_for, 1)
    assert outcome.detail["deleted"] == 1 and outcome.detail["verified"] == 1
    assert [d["customer_id"] for d in db.customer_details.find()] == [2]
    again = erase_collection(request, CollectionAddress("mongo_test", "customer_details"), connector_for, 2)
    assert again.detail["deleted"] == 1 and again.statements == 0  # the ledger: not deleted twice
