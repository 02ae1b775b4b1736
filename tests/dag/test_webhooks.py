"""Policy webhooks against a real HTTP server on 127.0.0.1: order, payload, retries, derived identities."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dag_runs import table
from tests.support.http_remote import Remote

JANE = {"email": "jane@example.com"}


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    server = Remote()
    monkeypatch.setenv("AIRFLOW_CONN_CRM_HOOK", server.url)
    yield server
    server.stop()


def with_webhooks(config_folder, webhooks: dict, retries: dict | None = None) -> None:
    def add(data: dict) -> None:
        data["policy"][0]["webhooks"] = webhooks  # default_access_policy

    config_folder.edit("policies/demo_policies.yml", add)
    if retries:
        config_folder.edit("privacy.yml", lambda d: d.update(retries=retries))


def test_one_way_webhooks_run_in_order_around_execution(run_request, config_folder, remote: Remote,
                                                         shop_db: Path, storage: Path, smtp) -> None:
    with_webhooks(config_folder, {
        "pre": [{"name": "crm_first", "conn_id": "crm_hook", "endpoint": "/pre/1"},
                {"name": "crm_second", "conn_id": "crm_hook", "endpoint": "/pre/2"}],
        "post": [{"name": "crm_done", "conn_id": "crm_hook", "endpoint": "/post"}]})
    _, dag_run, states = run_request("default_access_policy", JANE)

    assert dag_run.state == "success"
    assert [path for path, _ in remote.calls] == ["/pre/1", "/pre/2", "/post"]
    first = remote.calls[0][1]
    assert first == {"request_id": "req-1", "policy": "default_access_policy", "step": "pre",
                     "direction": "one_way", "identity": JANE}  # never access results
    report = json.loads((storage / "req-1" / "report.json").read_text())
    calls = [(e["step"], e["webhook"], e["status"]) for e in report["events"] if e["event"] == "webhook_called"]
    assert calls == [("pre", "crm_first", 200), ("pre", "crm_second", 200), ("post", "crm_done", 200)]


def test_a_failing_webhook_is_retried(run_request, config_folder, remote: Remote, shop_db: Path, smtp) -> None:
    with_webhooks(config_folder, {"pre": [{"name": "flaky", "conn_id": "crm_hook", "endpoint": "/flaky"}]},
                  retries={"count": 1, "delay_seconds": 0.1})
    remote.answers["/flaky"] = [(503, {})]
    _, dag_run, states = run_request("default_access_policy", JANE)

    assert dag_run.state == "success"
    assert states["pre_webhooks"] == ("success", 2)
    assert len(remote.calls) == 2


def test_a_refused_webhook_fails_without_retry(run_request, config_folder, remote: Remote, shop_db: Path) -> None:
    with_webhooks(config_folder, {"pre": [{"name": "strict", "conn_id": "crm_hook", "endpoint": "/strict"}]},
                  retries={"count": 2, "delay_seconds": 0.1})
    remote.answers["/strict"] = [(403, {})]
    before = table(shop_db, "customer")
    _, dag_run, states = run_request("default_access_policy", JANE)

    assert dag_run.state == "failed"
    assert states["pre_webhooks"] == ("failed", 1)
    assert states["access.demo_shop.customer"][0] == "upstream_failed"
    assert table(shop_db, "customer") == before


def test_a_two_way_webhook_adds_identities_that_change_what_is_found(run_request, config_folder, remote: Remote,
                                                                   shop_db: Path, storage: Path, smtp) -> None:
    """Nobody's email finds nothing; the phone number the remote derives finds Jane's SMS subscription."""
    with_webhooks(config_folder, {"pre": [{"name": "enrich", "conn_id": "crm_hook", "endpoint": "/enrich",
                                           "direction": "two_way"}]})
    remote.answers["/enrich"] = [(200, {"derived_identity": {"phone_number": "+15555550100"}})]
    _, dag_run, _ = run_request("default_access_policy", {"email": "nobody@example.com"})

    assert dag_run.state == "success"
    package = json.loads((storage / "req-1" / "access_package.json").read_text())
    assert package == {"demo_shop:sms_subscription": [{"phone": "+15555550100", "topic": "offers"}]}


def test_only_a_pre_execution_webhook_can_halt(run_request, config_folder, remote: Remote, shop_db: Path,
                                               storage: Path, smtp) -> None:
    """After execution there is nothing left to hold back: a post webhook's halt is logged and ignored."""
    with_webhooks(config_folder, {"post": [{"name": "late", "conn_id": "crm_hook", "endpoint": "/late",
                                            "direction": "two_way"}]})
    remote.answers["/late"] = [(200, {"halt": True})]
    _, dag_run, states = run_request("default_access_policy", JANE)

    assert dag_run.state == "success"
    assert states["post_webhooks"] == ("success", 1)
    report = json.loads((storage / "req-1" / "report.json").read_text())
    assert [(e["webhook"], e["halt"]) for e in report["events"] if e["event"] == "webhook_called"] == [
        ("late", False)]
    assert "reply-to" not in remote.headers[0]  # only a two-way pre webhook is told where to resume
