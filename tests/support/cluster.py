"""The Airflow cluster harness: a real Airflow (api-server, scheduler, dag-processor, triggerer on 127.0.0.1) on
a copy of the demo configuration, with its shop, SMTP server and store; and what the e2e tests do with one
(log in as a user, answer a human-in-the-loop task, wait for a condition)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from scripts.local_airflow import AirflowCluster
from tests.support.databases import airflow_metadata_engine
from tests.support.paths import DEMO_CONFIG, DEMO_SEED
from tests.support.ports import free_port
from tests.support.smtp import SmtpServer, smtp_connection_uri

# Seconds for a cluster to answer REST with the DAG parsed. A wait, not a delay: an idle machine takes about
# 15 s; --all starts four clusters at once on 2 cores, and other work may load the machine.
START_TIMEOUT = 300
HITL = "/api/v2/dags/privacy_request/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails"


@contextmanager
def airflow_world(base: Path, overlay: Path | None = None, env: dict[str, str] | None = None,
                  public: bool = False) -> Iterator[tuple[AirflowCluster, SmtpServer, Path, Path]]:
    """A real Airflow on the demo configuration (plus ``overlay``: more dataset and policy files, with the
    manual datasets mapped), a fresh demo shop and an SMTP server; yields (cluster, smtp, shop, storage).
    ``public`` sets ``[api] base_url`` to the api-server's address (links in emails point there)."""
    shop = base / "demo_shop.db"
    with sqlite3.connect(shop) as con:
        con.executescript(DEMO_SEED.read_text())
    config = base / "privacy"
    shutil.copytree(DEMO_CONFIG, config, ignore=shutil.ignore_patterns("seed"))
    settings = (config / "privacy.yml").read_text().replace(
        "retries: {count: 2, delay_seconds: 10, max_delay_seconds: 120}", "retries: {count: 0}")
    if overlay is not None:
        shutil.copytree(overlay, config, dirs_exist_ok=True)
        manual = "".join(f"  {p.stem}: {{manual: true}}\n" for p in sorted((overlay / "datasets").glob("*.yml")))
        settings = settings.replace("\ndata_categories:", f"\n{manual}data_categories:")
    (config / "privacy.yml").write_text(settings)
    smtp = SmtpServer(free_port())
    storage = base / "storage"
    # PostgreSQL, not SQLite, for Airflow's own metadata: under load SQLite's single writer made the API
    # server answer a trigger with HTTP 500 (a write waiting out SQLite's busy timeout).
    with contextmanager(airflow_metadata_engine)(base) as metadata:
        port = free_port()
        cluster = AirflowCluster(base / "airflow", port, {
            **({"AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"} if public else {}),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.url.render_as_string(hide_password=False),
            "PRIVACY_REQUESTS_CONFIG_DIR": str(config),
            "PRIVACY_REQUESTS_STORAGE": f"file://{storage}",
            "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": Fernet.generate_key().decode(),
            "AIRFLOW_CONN_DEMO_SHOP_DB": f"sqlite:///{shop}",
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp_connection_uri(smtp.port),
            # One user per role of the simple auth manager, and one with no role (logged in, no permission);
            # the api-server writes their passwords to passwords.json at start (see token()).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,user:user,op:op,nobody:",
            **(env or {}),
        })
        cluster.migrated = True
        try:
            cluster.start(timeout=START_TIMEOUT)
            yield cluster, smtp, shop, storage
        finally:
            cluster.stop()
            smtp.stop()


def token(cluster: AirflowCluster, username: str) -> str:
    """A JWT for ``username``, whose password the api-server generated into passwords.json at start."""
    password = json.loads((cluster.home / "passwords.json").read_text())[username]
    response = requests.post(f"{cluster.base}/auth/token", json={"username": username, "password": password},
                             timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def answer(cluster: AirflowCluster, run_id: str, task_id: str, option: str, values: dict) -> dict:
    """Answer a human-in-the-loop task, once the scheduler has seen it park (answering earlier fails it)."""
    cluster.wait_until_parked(run_id, task_id)
    return cluster.patch(HITL.format(run=run_id, task=task_id), {"chosen_options": [option], "params_input": values})


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something true (returned), or fail saying ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} after {timeout} s")
