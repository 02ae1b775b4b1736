"""Policy webhooks against a real HTTP server on 127.0.0.1: order, payload, retries, derived identities."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.dag.conftest import table

JANE = {"email": "jane@example.com"}


class Remote:
    """Records every POST; answers each path from a queue of (status, body), then 200 {}."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.answers: dict[str, list[tuple[int, dict]]] = {}
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                remote.calls.append((self.path, body))
                status, answer = (remote.answers.get(self.path) or [(200, {})]).pop(0)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    server = Remote()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AIRFLOW_CONN_CRM_HOOK", f"http://127.0.0.1:{server.port}")
    yield server
    server.server.shutdown()


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
