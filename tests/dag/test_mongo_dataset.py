"""A MongoDB dataset in the privacy_request DAG (dag.test): the wing opens the database through the MongoDB
provider's hook from an Airflow connection, access finds the subject by a nested identity, erasure masks
the nested field and proves it; SecantusDB stands in for MongoDB on a free loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pymongo
import pytest

from tests.support.mongo_server import mongo_server

DOCS = {"dataset": [{"fides_key": "docs", "collections": [{"name": "feedback", "fields": [
    {"name": "_id", "data_categories": ["system.operations"], "fides_meta": {"primary_key": True}},
    {"name": "info", "fields": [
        {"name": "email", "data_categories": ["user.contact.email"], "fides_meta": {"identity": "email"}},
        {"name": "phone", "data_categories": ["user.contact.phone_number"]}]},
    {"name": "message", "data_categories": ["user"]}]}]}]}


@pytest.fixture
def mongo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pymongo.database.Database]:
    with mongo_server(tmp_path / "secantus.log") as uri:
        address = urlparse(uri)
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_DOCS", json.dumps({
            "conn_type": "mongo", "host": address.hostname, "port": address.port, "schema": "warehouses_dag"}))
        client = pymongo.MongoClient(uri)
        database = client["warehouses_dag"]
        database.feedback.insert_many([
            {"info": {"email": "jane@example.com", "phone": "+15555550100"}, "message": "slow"},
            {"info": {"email": "john@example.com", "phone": "+15555550199"}, "message": "fine"}])
        yield database
        client.close()


def test_a_mongodb_dataset_is_reached_through_the_providers_hook(run_request, config_folder, shop_db: Path,
                                                                 storage: Path, smtp, mongo) -> None:
    config_folder.write("datasets/docs.yml", DOCS)
    config_folder.edit("privacy.yml", lambda d: d["datasets"].update(docs={"mongo_conn_id": "mongo_docs"}))
    config_folder.write("policies/docs.yml", {"policy": [{"key": "docs_policy", "rules": [
        {"key": "see", "action": "access", "targets": ["user"]},
        {"key": "phones", "action": "erasure", "targets": ["user.contact.phone_number"],
         "masking_strategy": {"strategy": "hash"}}]}]})
    dag, dag_run, states = run_request("docs_policy", {"email": "jane@example.com"})
    assert dag_run.state == "success", states
    report = json.loads((storage / "req-1" / "report.json").read_text())
    feedback = next(c for c in report["collections"] if c["collection"] == "docs:feedback")
    assert feedback["kind"] == "mongo" and feedback["access"]["rows"] == 1
    package = json.loads((storage / "req-1" / "access_package.json").read_text())
    assert package["docs:feedback"][0]["info"]["phone"] == "+15555550100"
    assert feedback["erasure"]["masked"] == 1 and feedback["erasure"]["verified"] == 1
    phones = {d["info"]["email"]: d["info"]["phone"] for d in mongo.feedback.find()}
    assert len(phones["jane@example.com"]) == 64 and phones["john@example.com"] == "+15555550199"
