"""A SaaS dataset (issue 22) in the demo configuration, run by the real DAGs in-process (dag.test): Stripe's
config and dataset from examples/saas, the Airflow connection from the environment, the fake Stripe API on
loopback. Access and erasure through privacy_request and privacy_request_batch, a dry run that sends nothing."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dag_runs import task_states
from tests.support.saas_servers.stripe import StripeApi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "saas"
POLICY = "access_and_erasure_policy"  # access everything, erase names


@pytest.fixture
def stripe(config_folder, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeApi]:
    api = StripeApi().start()
    for ident, email, name in [("cus_jane", "jane@example.com", "Jane Doe"), ("cus_john", "john@example.com",
                                                                               "John Roe"),
                               ("cus_ada", "ada@example.com", "Ada Poe")]:
        api.add_customer(ident, email, name)
    for i in range(5):
        api.add_charge(f"ch_{i}", "cus_jane", 100 + i, "jane@example.com")
    (config_folder.path / "saas").mkdir()
    shutil.copy(EXAMPLES / "saas" / "stripe.yml", config_folder.path / "saas" / "stripe.yml")
    shutil.copy(EXAMPLES / "datasets" / "stripe.yml", config_folder.path / "datasets" / "stripe.yml")
    config_folder.edit("privacy.yml", lambda d: d["datasets"].update(stripe={"saas": {
        "config": "saas/stripe.yml", "conn_id": "stripe_api", "params": {"domain": "host", "api_key": "password"},
        "protocol": "http"}, "pool": "stripe_api"}))
    host, port = api.host.split(":")
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_API", json.dumps({
        "conn_type": "http", "host": host, "port": int(port), "password": api.key, "extra": {"page_size": 2}}))
    yield api
    api.stop()


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_privacy_request_reaches_a_saas_dataset(run_request, stripe: StripeApi, shop_db: Path, storage: Path,
                                                smtp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    dag, dag_run, states = run_request(POLICY, {"email": "jane@example.com"}, request_id="r-saas")
    assert dag_run.state == "success", states
    assert states["access.stripe.charge"][0] == states["erasure.stripe.customer"][0] == "success"
    assert dag.get_task("erasure.stripe.customer").pool == "stripe_api"
    package = read(storage / "r-saas" / "access_package.json")
    assert [c["id"] for c in package["stripe:customer"]] == ["cus_jane"]
    assert len(package["stripe:charge"]) == 5  # three pages of 2
    assert stripe.customers["cus_jane"]["name"] is None and stripe.customers["cus_john"]["name"] == "John Roe"
    report = read(storage / "r-saas" / "report.json")
    customer = next(c for c in report["collections"] if c["collection"] == "stripe:customer")
    assert customer["erasure"]["masked"] == 1 and customer["erasure"]["verified"] == 1
    assert stripe.key not in json.dumps(report) and "cus_jane" not in json.dumps(report)
    # The task logs name path templates; no filled-in URL (httpx's request lines are silenced), no key.
    assert "stripe:charge: complete, 5 rows" in caplog.text
    assert "jane%40example.com" not in caplog.text and "cus_jane" not in caplog.text
    assert stripe.key not in caplog.text


def test_dry_run_sends_nothing_and_lists_the_requests(airflow_db, config_folder, stripe: StripeApi,
                                                      shop_db: Path, storage: Path, smtp) -> None:
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.model.loading import load_config

    dag = build_privacy_request_dag(load_config(config_folder.path))
    dag_run = dag.test(run_conf={"policy": POLICY, "identity": {"email": "jane@example.com"},
                                 "request_id": "r-dry", "dry_run": True})
    assert dag_run.state == "success", task_states(dag, dag_run.run_id)
    assert stripe.writes == []
    # validate_request sent no test_request (GET /v1/customers without a query): it is planned instead.
    assert not [c for c in stripe.calls if c.path == "/v1/customers" and not c.query]
    report = read(storage / "r-dry" / "report.json")
    planned = [e for e in report["events"] if e["event"] == "saas_test_planned"]
    assert [(e["dataset"], e["method"], e["path"]) for e in planned] == [("stripe", "GET", "/v1/customers")]
    customer = next(c for c in report["collections"] if c["collection"] == "stripe:customer")
    assert customer["erasure"]["plan"]["requests"] == [
        {"method": "POST", "path": "/v1/customers/<customer_id>", "count": 1, "fields": ["name"]}]


def test_batch_erases_each_subject_at_the_vendor(airflow_db, config_folder, stripe: StripeApi, shop_db: Path,
                                                 storage: Path, smtp) -> None:
    from include.privacy_requests.airflow.dag_factory import build_batch_dag
    from include.privacy_requests.model.loading import load_config

    dag = build_batch_dag(load_config(config_folder.path))
    dag_run = dag.test(run_conf={"batch_id": "b-saas", "policy": POLICY, "subjects": [
        {"request_id": "r-jane", "identity": {"email": "jane@example.com"}},
        {"request_id": "r-john", "identity": {"email": "john@example.com"}}]})
    assert dag_run.state == "success", task_states(dag, dag_run.run_id)
    assert stripe.customers["cus_jane"]["name"] is None and stripe.customers["cus_john"]["name"] is None
    assert stripe.customers["cus_ada"]["name"] == "Ada Poe"
    jane = read(storage / "r-jane" / "access_package.json")
    john = read(storage / "r-john" / "access_package.json")
    assert [c["id"] for c in jane["stripe:customer"]] == ["cus_jane"] and len(jane["stripe:charge"]) == 5
    assert [c["id"] for c in john["stripe:customer"]] == ["cus_john"] and "stripe:charge" not in john


def test_refused_credentials_fail_validate_request_before_anything_is_touched(
        run_request, stripe: StripeApi, shop_db: Path, storage: Path, smtp, monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = stripe.host.split(":")
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_API", json.dumps({"conn_type": "http", "host": host, "port": int(port),
                                                              "password": "sk_wrong"}))
    _, dag_run, states = run_request(POLICY, {"email": "jane@example.com"}, request_id="r-badkey")
    assert dag_run.state == "failed" and states["validate_request"][0] == "failed"
    assert "access.stripe.customer" not in {t for t, (s, _) in states.items() if s == "success"}
    assert stripe.writes == [] and all(c.path == "/v1/customers" and not c.query for c in stripe.calls)
