"""Pools and the storage connection in privacy.yml: a dataset's pool caps the queries against its database
across requests and workers, so every access and erasure task of that dataset (and no other) runs in it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.config_files import edit, find, problems_of
from tests.support.dag_runs import dagbag
from tests.support.paths import DEMO_CONFIG

SHOP_TABLES = ("customer", "address", "orders", "order_item", "login", "payment_card", "sms_subscription")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the demo configuration, without its seed data."""
    return Path(shutil.copytree(DEMO_CONFIG, tmp_path / "privacy", ignore=shutil.ignore_patterns("seed")))


def _set(dataset: str, **values: Any):
    def change(data: dict[str, Any]) -> None:
        data["datasets"][dataset].update(values)
    return change


def test_a_datasets_pool_is_assigned_to_its_collection_tasks(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(folder, "privacy.yml", _set("demo_shop", pool="shop_db"))
    bag = dagbag(monkeypatch, folder)
    assert bag.import_errors == {}
    dag = bag.dags["privacy_request"]
    pooled = {t.task_id for t in dag.tasks if t.pool == "shop_db"}
    assert pooled == {f"{step}.demo_shop.{table}" for step in ("access", "erasure") for table in SHOP_TABLES}
    others = {t.pool for t in dag.tasks if t.task_id not in pooled}
    assert others == {"default_pool"}  # the vendor's and the checkpoints' tasks stay out of the shop's pool


def test_without_a_pool_every_task_is_in_the_default_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = dagbag(monkeypatch).dags["privacy_request"]
    assert {t.pool for t in dag.tasks} == {"default_pool"}


def test_a_pool_on_a_vendor_dataset_is_refused_with_its_place(folder: Path) -> None:
    edit(folder, "privacy.yml", _set("daycare_vendor", pool="vendors"))
    problem = find(problems_of(folder), "privacy.yml", "datasets.daycare_vendor")
    assert "only a dataset with 'conn_id' or 'saas' takes one" in problem.message


def test_an_empty_pool_name_is_refused(folder: Path) -> None:
    edit(folder, "privacy.yml", _set("demo_shop", pool=""))
    assert find(problems_of(folder), "privacy.yml", "datasets.demo_shop.pool")


def test_the_storage_connection_is_read_from_privacy_yml(folder: Path) -> None:
    from include.privacy_requests.model.loading import load_config

    settings = yaml.safe_load((folder / "privacy.yml").read_text())
    assert load_config(folder).settings.storage_conn_id is None  # the demo: file://, no connection
    settings["storage_conn_id"] = "privacy_store"
    (folder / "privacy.yml").write_text(yaml.safe_dump(settings))
    assert load_config(folder).settings.storage_conn_id == "privacy_store"
