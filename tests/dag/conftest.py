"""Fixtures for in-process DAG runs: a copy of the demo configuration, the demo SQLite shop, a real SMTP
server on 127.0.0.1 (aiosmtpd), and a helper that runs one privacy request with dag.test()."""

from __future__ import annotations

import email
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from tests.conftest import DEMO_CONFIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    envelope_to: list[str]
    message: Message

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        raise AssertionError(f"no {content_type} part")


@dataclass
class _Collector:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(Received(list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


class SmtpServer:
    """A real SMTP server on a fixed loopback port that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = _Collector()
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        if self._controller is None:
            self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
            self._controller.start()

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f"smtp://127.0.0.1:{server.port}?disable_tls=true&disable_ssl=true&from_email=privacy%40example.com"
        "&timeout=5&retry_limit=0",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def shop_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo shop as a fresh SQLite file, reachable through the `demo_shop_db` connection."""
    path = tmp_path / "demo_shop.db"
    with sqlite3.connect(path) as con:
        con.executescript((DEMO_CONFIG / "seed" / "demo_shop.sql").read_text())
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", f"sqlite:///{path}")
    return path


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "storage"
    monkeypatch.setenv("PRIVACY_REQUESTS_STORAGE", f"file://{path}")
    return path


class ConfigFolder:
    """A copy of the demo configuration that a test edits before building the DAG."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def edit(self, name: str, change: Callable[[Any], None]) -> None:
        file = self.path / name
        data = yaml.safe_load(file.read_text())
        change(data)
        file.write_text(yaml.safe_dump(data, sort_keys=False))

    def write(self, name: str, data: Any) -> None:
        (self.path / name).write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def config_folder(tmp_path: Path) -> ConfigFolder:
    path = tmp_path / "privacy"
    shutil.copytree(DEMO_CONFIG, path, ignore=shutil.ignore_patterns("seed"))
    folder = ConfigFolder(path)
    folder.edit("privacy.yml", lambda d: d.update(retries={"count": 0}))
    return folder


def table(db: Path, name: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall()


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


def task_states(dag, run_id: str) -> dict[str, tuple[str | None, int]]:
    """task_id -> (state, try_number), read fresh from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run_id).all()
        return {ti.task_id: (ti.state, ti.try_number) for ti in tis}
