"""The pytest fixtures shared by the dag and integration tiers (tests/conftest.py loads this module as a
plugin): a real SMTP server, the demo shop as SQLite, a storage folder, a copy of the demo configuration and a
helper that runs one privacy request with dag.test()."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dag_runs import ConfigFolder, task_states
from tests.support.paths import DEMO_CONFIG, DEMO_SEED
from tests.support.ports import free_port
from tests.support.smtp import SmtpServer, smtp_connection_uri


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_uri(server.port))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def shop_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo shop as a fresh SQLite file, reachable through the `demo_shop_db` connection."""
    path = tmp_path / "demo_shop.db"
    with sqlite3.connect(path) as con:
        con.executescript(DEMO_SEED.read_text())
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", f"sqlite:///{path}")
    return path


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "storage"
    monkeypatch.setenv("PRIVACY_REQUESTS_STORAGE", f"file://{path}")
    return path


@pytest.fixture
def config_folder(tmp_path: Path) -> ConfigFolder:
    path = tmp_path / "privacy"
    shutil.copytree(DEMO_CONFIG, path, ignore=shutil.ignore_patterns("seed"))
    folder = ConfigFolder(path)
    folder.edit("privacy.yml", lambda d: d.update(retries={"count": 0}))
    return folder


@pytest.fixture
def run_request(airflow_db: None, config_folder: ConfigFolder, storage: Path):
    """Run one privacy request in-process; returns the dag, the run and its task states."""
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.model.loading import load_config

    def run(policy: str, identity: dict[str, str], request_id: str = "req-1"):
        dag = build_privacy_request_dag(load_config(config_folder.path))
        dag_run = dag.test(run_conf={"policy": policy, "identity": identity, "request_id": request_id})
        return dag, dag_run, task_states(dag, dag_run.run_id)

    return run
