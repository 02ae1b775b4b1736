"""One real Airflow (api-server, scheduler, dag-processor, triggerer on 127.0.0.1) shared by the e2e tests."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from scripts.local_airflow import AirflowCluster
from tests.dag.conftest import SmtpServer, free_port
from tests.integration.conftest import postgresql_engine


@contextmanager
def airflow_world(base: Path, overlay: Path | None = None, env: dict[str, str] | None = None,
                  public: bool = False) -> Iterator[tuple[AirflowCluster, SmtpServer, Path, Path]]:
    """A real Airflow on the demo configuration (plus ``overlay``: more dataset and policy files, with the
    manual datasets mapped), a fresh demo shop and an SMTP server; yields (cluster, smtp, shop, storage).
    ``public`` sets ``[api] base_url`` to the api-server's address (links in emails point there)."""
    root = Path(__file__).resolve().parents[2]
    shop = base / "demo_shop.db"
    with sqlite3.connect(shop) as con:
        con.executescript((root / "include/privacy/seed/demo_shop.sql").read_text())
    config = base / "privacy"
    shutil.copytree(root / "include/privacy", config, ignore=shutil.ignore_patterns("seed"))
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
    with contextmanager(postgresql_engine)(base) as metadata:
        port = free_port()
        cluster = AirflowCluster(base / "airflow", port, {
            **({"AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"} if public else {}),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.url.render_as_string(hide_password=False),
            "PRIVACY_REQUESTS_CONFIG_DIR": str(config),
            "PRIVACY_REQUESTS_STORAGE": f"file://{storage}",
            "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": Fernet.generate_key().decode(),
            "AIRFLOW_CONN_DEMO_SHOP_DB": f"sqlite:///{shop}",
            "AIRFLOW_CONN_SMTP_DEFAULT": f"smtp://127.0.0.1:{smtp.port}?disable_tls=true&disable_ssl=true"
                                         "&from_email=privacy%40example.com&timeout=5&retry_limit=0",
            # One user per role of the simple auth manager, and one with no role (logged in, no permission);
            # the api-server writes their passwords to passwords.json at start (see test_access_control.py).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,user:user,op:op,nobody:",
            **(env or {}),
        })
        try:
            cluster.start()
            yield cluster, smtp, shop, storage
        finally:
            cluster.stop()
            smtp.stop()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowCluster, SmtpServer, Path, Path]]:
    with airflow_world(tmp_path_factory.mktemp("e2e")) as parts:
        yield parts


@pytest.fixture(scope="session")
def finished(world) -> dict[str, str]:
    """An access request and an erasure request, run to the end by the scheduler."""
    cluster, smtp = world[0], world[1]
    smtp.start()
    runs = {"access": "ui-access", "erasure": "ui-erasure"}
    for kind, run_id in runs.items():
        conf = {"policy": f"default_{kind}_policy", "identity": {"email": "jane@example.com"}, "request_id": run_id}
        cluster.trigger(run_id, conf)
    for run_id in runs.values():
        assert cluster.wait_for_run(run_id) == "success"
    return runs
