"""In-process DAG runs (dag.test): what a run left (task states, a table of the shop), the DAG files as the
dag-processor loads them, a copy of the demo configuration to edit, and clear-and-resume of an existing run.

``dag.test()`` always makes a new run; resuming needs the same loop pointed at the existing run (``clear`` then
``resume``, like a user clearing in the UI). It uses Airflow's private ``_run_task`` (the loop dag.test itself
uses), which is why Airflow's version is pinned.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import DEMO_CONFIG, DEMO_SEED, ROOT
from tests.support.ports import free_port
from tests.support.smtp import SmtpServer, smtp_connection_uri


def clear(dag, run_id: str, task_ids: list[str], *, include_downstream: bool = True) -> list[str]:
    """Clear tasks (and their downstream) of one run, as POST .../clearTaskInstances does."""
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session

    serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    subset = serialized.partial_subset(task_ids=task_ids, include_downstream=include_downstream,
                                       include_upstream=False)
    with create_session() as session:
        cleared = subset.clear(run_id=run_id, session=session, dry_run=True)
        subset.clear(run_id=run_id, session=session)
    return sorted(ti.task_id for ti in cleared)


def resume(dag, run_id: str, timeout: float = 120) -> str:
    """Run the cleared tasks of an existing run until it finishes; returns the run's final state."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    deadline = time.monotonic() + timeout
    with create_session() as session:
        dag_run = session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).one()
        if dag_run.state == DagRunState.QUEUED:
            dag_run.state = DagRunState.RUNNING
            session.commit()
        dag_run.dag = _serialized(dag)
        return _run_until_done(dag, dag_run, session, deadline)


def start(dag, run_conf: dict, first_tasks: list[str]) -> str:
    """A run of ``dag`` that has run only ``first_tasks`` and is still running, as a run the scheduler has
    just begun looks; returns its run id. (dag.test of a subset, then the run made whole and running again.)"""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    subset = dag.partial_subset(task_ids=first_tasks, include_downstream=False, include_upstream=False)
    run_id = subset.test(run_conf=run_conf).run_id
    with create_session() as session:
        session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).update({"state": DagRunState.RUNNING})
    return run_id


def drive(dag, run_id: str, *, until=None, timeout: float = 120) -> str:
    """Run the tasks of an existing run as the scheduler would, creating those it has no instance of yet,
    until the run ends or ``until()`` holds; waits (not busy) while tasks are rescheduled. Returns its state."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    deadline = time.monotonic() + timeout
    with create_session() as session:
        dag_run = session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).one()
        version = next(ti.dag_version_id for ti in dag_run.get_task_instances(session=session))
        dag_run.dag = _serialized(dag)
        dag_run.verify_integrity(session=session, dag_version_id=version)
        session.commit()
        return _run_until_done(dag, dag_run, session, deadline, until)


def _serialized(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


def _run_until_done(dag, dag_run, session, deadline: float, until=None) -> str:
    """The scheduler's loop, in this process: schedule what may run, run it, until the run ends, ``until()``
    holds or the deadline passes; waits (not busy) while only rescheduled tasks are left."""
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState

    while dag_run.state == DagRunState.RUNNING and time.monotonic() < deadline:
        if until is not None and until():
            break
        session.expire_all()
        schedulable, _ = dag_run.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        ran = False
        for ti in dag_run.get_task_instances(session=session):
            if ti.state == TaskInstanceState.SCHEDULED:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id])
                ran = True
        if not ran:
            time.sleep(0.2)  # only rescheduled tasks left: their time comes
    return str(dag_run.state)


def task_states(dag, run_id: str) -> dict[str, tuple[str | None, int]]:
    """task_id -> (state, try_number), read fresh from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run_id).all()
        return {ti.task_id: (ti.state, ti.try_number) for ti in tis}


def table(db: Path, name: str) -> list[tuple]:
    """Every row of a table of a SQLite database, ordered by its first two columns."""
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall()


def dagbag(monkeypatch: pytest.MonkeyPatch, config_dir: Path | None = None):
    """The project's DAG files loaded as the dag-processor loads them (on ``config_dir`` if given)."""
    from airflow.dag_processing.dagbag import DagBag

    if config_dir is not None:
        monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_dir))
    return DagBag(dag_folder=str(ROOT / "dags"))


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


@dataclass
class FinishedRequest:
    """A request run to its end on a fresh demo shop, store and SMTP server of its own (``own_request``)."""

    dag: Any
    dag_run: Any
    states: dict[str, tuple[str | None, int]]
    shop: Path
    storage: Path
    smtp: SmtpServer
    shop_before: bytes  # the shop file before the run


def own_request(base: Path, policy: str, identity: dict[str, str], request_id: str = "req-1") -> FinishedRequest:
    """One request on the demo configuration (no retries), with nothing shared with the test's own fixtures: for
    a module-scoped fixture whose finished run several tests read (one dag.test run instead of one per test)."""
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.model.loading import load_config

    shop = base / "demo_shop.db"
    with sqlite3.connect(shop) as con:
        con.executescript(DEMO_SEED.read_text())
    config = ConfigFolder(base / "privacy")
    shutil.copytree(DEMO_CONFIG, config.path, ignore=shutil.ignore_patterns("seed"))
    config.edit("privacy.yml", lambda d: d.update(retries={"count": 0}))
    smtp = SmtpServer(free_port())
    shop_before = shop.read_bytes()
    smtp.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", f"sqlite:///{shop}")
            env.setenv("PRIVACY_REQUESTS_STORAGE", f"file://{base / 'storage'}")
            env.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_uri(smtp.port))
            dag = build_privacy_request_dag(load_config(config.path))
            dag_run = dag.test(run_conf={"policy": policy, "identity": identity, "request_id": request_id})
    finally:
        smtp.stop()
    return FinishedRequest(dag, dag_run, task_states(dag, dag_run.run_id), shop, base / "storage", smtp, shop_before)
