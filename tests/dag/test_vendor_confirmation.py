"""The vendor confirmation step in the DAG: where it sits, and that a vendor who opts in cannot be asked
without a link to give it (the answering itself runs on a real scheduler: tests/e2e/test_vendor_confirmation.py)."""

from __future__ import annotations

import pytest

from include.privacy_requests.airflow.constants import checkpoint_order
from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
from include.privacy_requests.model.loading import load_config
from tests.support.dag_runs import ConfigFolder
from tests.support.paths import DEMO_CONFIG

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


def test_a_vendor_that_confirms_needs_the_public_address(config_folder: ConfigFolder,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """validate_request adds these problems to an erasure's, which refuse it before anything is touched (as
    tests/dag/test_hostile_confs.py shows for the SMTP connection's)."""
    from include.privacy_requests.airflow.hooks import confirmation_links, confirmation_problems
    from include.privacy_requests.errors import RequestError

    opt_in(config_folder)
    config = load_config(config_folder.path)
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    assert confirmation_problems(config) == [
        "vendor(s) daycare_vendor confirm through a link to this Airflow, but [api] base_url is not set "
        "(AIRFLOW__API__BASE_URL, the address vendors reach the api-server at)"]
    with pytest.raises(RequestError, match="base_url is not set"):
        confirmation_links()
    assert confirmation_problems(load_config(DEMO_CONFIG)) == []  # nobody confirms: nothing needed
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert confirmation_problems(config) == []
    assert confirmation_links().page == "https://airflow.example.com/privacy-vendor/confirm"
