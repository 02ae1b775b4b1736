"""A failed request resumed by clearing through the REST API, under a real scheduler (LocalExecutor)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from scripts.local_airflow import AirflowCluster
from tests.dag.conftest import SmtpServer, free_port

pytestmark = pytest.mark.e2e
SEND = "erasure_email_send.daycare_vendor"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowCluster, SmtpServer, Path, Path]]:
    base = tmp_path_factory.mktemp("e2e")
    root = Path(__file__).resolve().parents[2]
    shop = base / "demo_shop.db"
    with sqlite3.connect(shop) as con:
        con.executescript((root / "include/privacy/seed/demo_shop.sql").read_text())
    config = base / "privacy"
    import shutil

    shutil.copytree(root / "include/privacy", config, ignore=shutil.ignore_patterns("seed"))
    settings = (config / "privacy.yml").read_text().replace(
        "retries: {count: 2, delay_seconds: 10, max_delay_seconds: 120}", "retries: {count: 0}")
    (config / "privacy.yml").write_text(settings)
    smtp = SmtpServer(free_port())
    storage = base / "storage"
    cluster = AirflowCluster(base / "airflow", free_port(), {
        "PRIVACY_REQUESTS_CONFIG_DIR": str(config),
        "PRIVACY_REQUESTS_STORAGE": f"file://{storage}",
        "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_CONN_DEMO_SHOP_DB": f"sqlite:///{shop}",
        "AIRFLOW_CONN_SMTP_DEFAULT": f"smtp://127.0.0.1:{smtp.port}?disable_tls=true&disable_ssl=true"
                                     "&from_email=privacy%40example.com&timeout=5&retry_limit=0",
    })
    try:
        cluster.start()
        yield cluster, smtp, shop, storage
    finally:
        cluster.stop()
        smtp.stop()


def customer_rows(shop: Path) -> list[tuple]:
    with sqlite3.connect(shop) as con:
        return con.execute("SELECT * FROM customer ORDER BY id").fetchall()


def test_email_failure_resumed_by_a_rest_clear(world) -> None:
    cluster, smtp, shop, storage = world
    conf = {"policy": "default_erasure_policy", "identity": {"email": "jane@example.com"}, "request_id": "e2e-1"}
    cluster.trigger("e2e-1", conf)  # the SMTP server is down

    assert cluster.wait_for_run("e2e-1") == "failed"
    states = cluster.task_states("e2e-1")
    assert states[SEND] == ("failed", 1)
    assert states["finalize"][0] == "upstream_failed"
    masked = customer_rows(shop)
    assert masked[0][2] is None  # Jane's name was masked before the email step

    smtp.start()
    assert cluster.clear("e2e-1", [SEND]) == sorted([SEND, "post_webhooks", "finalize"])
    assert cluster.wait_for_run("e2e-1") == "success"

    after = cluster.task_states("e2e-1")
    assert after[SEND] == ("success", 2)
    upstream = {t: s for t, s in after.items() if t.startswith(("validate", "access.", "erasure.", "upload"))}
    assert all(try_number == 1 for _, try_number in upstream.values()), upstream
    assert len(smtp.received) == 1
    assert smtp.received[0].envelope_to == ["privacy@daycare-vendor.example"]
    assert customer_rows(shop) == masked  # masked once: the hash was not applied a second time
    report = json.loads((storage / "e2e-1" / "report.json").read_text())
    assert [e["checkpoint"] for e in report["events"] if e["event"] == "checkpoint_failed"] == [SEND]
    assert report["emails_sent"] == 1
