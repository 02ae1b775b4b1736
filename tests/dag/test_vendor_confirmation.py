"""The vendor confirmation step in the DAG: where it sits, and that a vendor who opts in cannot be asked
without a link to give it (the answering itself runs on a real scheduler: tests/e2e/test_vendor_confirmation.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.privacy_requests.airflow.constants import checkpoint_order
from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
from include.privacy_requests.config import load_config
from tests.conftest import DEMO_CONFIG
from tests.dag.conftest import ConfigFolder, table

VENDOR = "daycare_vendor"
CONFIRM, SEND = f"vendor_confirmation.{VENDOR}", f"erasure_email_send.{VENDOR}"


def opt_in(folder: ConfigFolder) -> None:
    folder.edit("privacy.yml", lambda d: d["datasets"][VENDOR]["email"].update(confirm=True, remind_every="P3D"))


def test_the_confirmation_waits_between_the_vendor_email_and_the_post_webhooks(config_folder: ConfigFolder) -> None:
    opt_in(config_folder)
    config = load_config(config_folder.path)
    assert config.mapping(VENDOR).email.remind_every.days == 3
    assert config.mapping(VENDOR).email.overdue_after.days == 30  # the default
    dag = build_privacy_request_dag(config)
    assert dag.task_dict[CONFIRM].upstream_task_ids == {SEND}
    assert dag.task_dict["post_webhooks"].upstream_task_ids == {CONFIRM}
    order = checkpoint_order(config)
    assert order.index(SEND) < order.index(CONFIRM) < order.index("post_webhooks")
    # Without the opt-in the vendor is sent its email and done, as before.
    plain = build_privacy_request_dag(load_config(DEMO_CONFIG))
    assert CONFIRM not in plain.task_dict and plain.task_dict["post_webhooks"].upstream_task_ids == {SEND}


def test_a_vendor_that_confirms_needs_the_public_address_and_is_refused_before_anything_is_touched(
        run_request, config_folder: ConfigFolder, shop_db: Path, storage: Path, smtp,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    opt_in(config_folder)
    before = table(shop_db, "customer")
    _, dag_run, states = run_request("default_erasure_policy", {"email": "jane@example.com"})
    assert dag_run.state == "failed" and states["validate_request"][0] == "failed"
    failure = json.loads((storage / "req-1" / "report.json").read_text())["failed_checkpoint"]
    assert "daycare_vendor confirm through a link to this Airflow, but [api] base_url is not set" in failure["message"]
    assert table(shop_db, "customer") == before and smtp.received == []
