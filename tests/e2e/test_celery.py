"""The same DAGs on CeleryExecutor: two Celery workers (separate processes, working folders, Airflow homes and
TMPDIRs) on Redis, PostgreSQL as Airflow's metadata database and as the shop, the request store on S3
(moto's server on 127.0.0.1) reached through the Airflow connection privacy.yml names, and the shop's
collection tasks in the pool `shop_db`.

One cluster serves the module. The requests run side by side from the start: a clean reference, one whose
vendor email the SMTP server refuses, one whose erasure a worker dies in (SIGKILL of the worker and every
process under it, while the erasure UPDATE waits on a row lock the test holds), and one waiting for its
approval while the workers restart. Each faulty request, once fixed and cleared, ends as the reference ends:
the same rows masked once (the hash has a fixed salt: twice would show), one email, one call per webhook.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from upath import UPath

from scripts.celery_airflow import CeleryCluster
from tests.support.cluster import START_TIMEOUT, answer
from tests.support.databases import PG_HOST, PG_PORT, airflow_metadata_engine, postgresql_engine
from tests.support.faults import (
    ERASE_CUSTOMER,
    KILLED,
    OVERLAY,
    REFERENCE,
    SEND,
    SMTP_REFUSING,
    SUBJECTS,
    Answers,
    Calls,
    Faults,
    Subject,
    assert_like_a_clean_run,
    blocked_update,
    drop_role,
    failed_at,
    load_shop,
    masked_at_try,
    refusing_smtp,
    wait_until,
)
from tests.support.http_remote import Remote
from tests.support.paths import DEMO_CONFIG
from tests.support.ports import free_port
from tests.support.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server
from tests.support.smtp import SmtpServer, smtp_connection_uri

# The first test waits for the cluster, its workers and four requests on four slots (RUN_TIMEOUT = 600).
pytestmark = pytest.mark.timeout(1200)

BROKER = "redis://127.0.0.1:6379/5"  # this project's Redis database index
STORE_CONN = "privacy_store"
POOL = "shop_db"
REVIEWED = SUBJECTS[4]  # waits for its approval while the workers restart
WORKERS = ("worker-1", "worker-2")
# Four requests side by side on four task slots; a task takes 2-3 s on an idle 2-core machine, 10 s under load.
RUN_TIMEOUT = 600


def celery_settings_file(config: Path) -> None:
    """The demo's privacy.yml, as a Celery/S3 deployment writes it: no retries (the tests clear), the store's
    credentials from a connection, the shop's queries capped by a pool."""
    settings = (config / "privacy.yml").read_text()
    for old, new in [
        ("retries: {count: 2, delay_seconds: 10, max_delay_seconds: 120}", "retries: {count: 0}"),
        ("smtp_conn_id: smtp_default", f"storage_conn_id: {STORE_CONN}\nsmtp_conn_id: smtp_default"),
        ("demo_shop: {conn_id: demo_shop_db, access: write}",
         f"demo_shop: {{conn_id: demo_shop_db, access: write, pool: {POOL}}}"),
    ]:
        assert old in settings, old
        settings = settings.replace(old, new)
    (config / "privacy.yml").write_text(settings)


@contextmanager
def celery_world(base: Path, shop_url: str, s3: S3Server, bucket: str,
                 remote: Remote) -> Iterator[tuple[CeleryCluster, SmtpServer]]:
    config = base / "privacy"
    shutil.copytree(DEMO_CONFIG, config, ignore=shutil.ignore_patterns("seed"))
    shutil.copytree(OVERLAY, config, dirs_exist_ok=True)
    celery_settings_file(config)
    smtp = SmtpServer(free_port())
    with contextmanager(airflow_metadata_engine)(base) as metadata:
        cluster = CeleryCluster(base / "airflow", free_port(), {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.url.render_as_string(hide_password=False),
            "PRIVACY_REQUESTS_CONFIG_DIR": str(config),
            "PRIVACY_REQUESTS_STORAGE": f"s3://{bucket}/requests",
            f"AIRFLOW_CONN_{STORE_CONN.upper()}": s3.connection_json,
            "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": Fernet.generate_key().decode(),
            "AIRFLOW_CONN_DEMO_SHOP_DB": shop_url,
            "AIRFLOW_CONN_FAULTS_CRM": remote.url,
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp_connection_uri(smtp.port),
            # A worker that dies stops heartbeating its tasks: the scheduler fails them after this long.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # Only the DAGs the cluster unpauses run: the daily retention and deadline checks would take slots.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }, broker_url=BROKER, workers=len(WORKERS))
        cluster.migrated = True
        try:
            cluster.start(timeout=START_TIMEOUT)
            yield cluster, smtp
        finally:
            cluster.stop()
            smtp.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    base = tmp_path_factory.mktemp("celery")
    remote = Remote()
    remote.calls, remote.answers = Calls(), Answers()
    role = f"prq_celery_{secrets.token_hex(4)}"
    s3 = S3Server()
    try:
        bucket = s3.bucket("privacy-requests")
        with contextmanager(postgresql_engine)(base) as shop:
            load_shop(shop, role)
            try:
                shop_url = f"postgres://{role}@{PG_HOST}:{PG_PORT}/{shop.url.database}"
                with celery_world(base, shop_url, s3, bucket, remote) as (cluster, smtp):
                    storage = UPath(f"s3://{bucket}/requests", endpoint_url=s3.endpoint, key=ACCESS_KEY,
                                    secret=SECRET_KEY, client_kwargs={"region_name": REGION})
                    faults = Faults(cluster, smtp, storage, remote, shop, role, before={})  # type: ignore[arg-type]
                    faults.before = faults.snapshot()
                    smtp.handler.handle_DATA = refusing_smtp(faults)  # type: ignore[method-assign]
                    smtp.start()
                    faults.smtp_refusing.add(SMTP_REFUSING.request_id)
                    cluster.post("/api/v2/pools", {"name": POOL, "slots": 4})
                    faults.row_lock = shop.connect()  # KILLED's erasure UPDATE will wait on this lock
                    faults.row_lock.execute(text("SELECT 1 FROM customer WHERE id = :id FOR UPDATE"),
                                            {"id": KILLED.base})
                    try:
                        for subject in (REFERENCE, SMTP_REFUSING, KILLED):
                            faults.trigger(subject)
                        cluster.trigger(REVIEWED.request_id, {"policy": "reviewed_erasure_policy",
                                                              "identity": {"email": REVIEWED.email},
                                                              "request_id": REVIEWED.request_id})
                        yield faults
                    finally:
                        faults.row_lock.rollback()
                        faults.row_lock.close()
            finally:
                drop_role(shop, role)
    finally:
        remote.stop()
        s3.stop()


def task_instances(world: Faults, subject: Subject) -> list[dict]:
    body = world.cluster.get(f"/api/v2/dags/privacy_request/dagRuns/{subject.request_id}/taskInstances", limit=500)
    return body["task_instances"]


def test_a_request_runs_on_both_workers_with_its_store_on_s3(world: Faults) -> None:
    assert world.cluster.wait_for_run(REFERENCE.request_id, timeout=RUN_TIMEOUT) == "success"
    state = world.reference["state"]
    ran = [ti for ti in task_instances(world, REFERENCE) if ti["state"] == "success"]
    assert {ti["hostname"] for ti in ran} == set(WORKERS)  # its tasks spread over both workers
    assert state["tables"]["customer"] == [(0, "<email>", None, "<hash(phone)>", 1, "gold", "2024-01-05")]
    assert state["tables"]["address"] == [(1, "REDACTED", "REDACTED", "REDACTED"),
                                          (2, "REDACTED", "REDACTED", "REDACTED")]
    report = world.reference["report"]
    assert report["status"] == "complete" and report["rows_masked"] == 5 and report["emails_sent"] == 1
    assert len(world.emails(REFERENCE)) == 1
    # Everything lives in the bucket: no file in the workers' TMPDIRs (Celery's pool keeps an empty folder).
    keys = {p.name for p in (world.storage / REFERENCE.request_id).iterdir()}
    assert {"report.json", "access_package.json", "ledger"} <= keys
    for name in WORKERS:
        assert [p for p in (world.cluster.worker_folder(name) / "tmp").rglob("*") if not p.is_dir()] == []


def test_the_shop_tasks_run_in_their_pool(world: Faults) -> None:
    pools = {ti["task_id"]: ti["pool"] for ti in task_instances(world, REFERENCE)}
    shop_tasks = {t for t in pools if t.startswith(("access.demo_shop.", "erasure.demo_shop."))}
    assert len(shop_tasks) == 14  # seven tables, access and erasure
    assert {pools[t] for t in shop_tasks} == {POOL}
    assert {p for t, p in pools.items() if t not in shop_tasks} == {"default_pool"}


def test_smtp_refusing_then_accepting_sends_one_email(world: Faults) -> None:
    subject, cluster = SMTP_REFUSING, world.cluster
    try:
        assert cluster.wait_for_run(subject.request_id, timeout=RUN_TIMEOUT) == "failed"
        failure = failed_at(world, subject, SEND)
    finally:
        world.smtp_refusing.discard(subject.request_id)
    states = cluster.task_states(subject.request_id)
    assert states[SEND] == ("failed", 1) and world.emails(subject) == []
    assert failure["error"] == "TransientError" and "451" in failure["message"]
    assert cluster.clear(subject.request_id, [SEND]) == sorted([SEND, "post_webhooks", "finalize"])
    assert_like_a_clean_run(world, subject, SEND, states)


def test_a_worker_killed_mid_erasure_ends_like_a_clean_run(world: Faults) -> None:
    subject, cluster, lock = KILLED, world.cluster, world.row_lock
    assert lock is not None
    try:
        backend = wait_until(lambda: blocked_update(world), RUN_TIMEOUT, "no erasure UPDATE waiting on customer")
        ti = cluster.get(f"/api/v2/dags/privacy_request/dagRuns/{subject.request_id}/taskInstances/"
                         f"{ERASE_CUSTOMER}")
        assert ti["state"] == "running" and ti["hostname"] in WORKERS
        worker = ti["hostname"]
        tree = psutil.Process(cluster.workers[worker].pid).children(recursive=True)
        cluster.stop_worker(worker, signal.SIGKILL)  # the host dies: worker, supervisors, task processes
        assert psutil.wait_procs(tree, timeout=15)[1] == []  # none of them survives
        cluster.start_worker(worker)  # the host comes back
        assert cluster.wait_for_run(subject.request_id, timeout=240) == "failed"  # heartbeat timeout
    finally:
        lock.rollback()
    wait_until(lambda: not world.sql("SELECT 1 FROM pg_stat_activity WHERE pid = :pid", pid=backend), 30,
               f"backend {backend} of the killed task still there")
    states = cluster.task_states(subject.request_id)
    assert states[ERASE_CUSTOMER] == ("failed", 1)
    assert states[SEND][0] == "upstream_failed" and world.emails(subject) == []
    assert [r for r in world.snapshot()["customer"] if subject.owns(r[0])] == subject.rows()["customer"]

    assert cluster.clear(subject.request_id, [ERASE_CUSTOMER]) == sorted(
        [ERASE_CUSTOMER, SEND, "post_webhooks", "finalize"])
    report = assert_like_a_clean_run(world, subject, ERASE_CUSTOMER, states)
    assert masked_at_try(report)["demo_shop:customer"] == 2


def test_a_request_waiting_for_approval_survives_a_worker_restart(world: Faults) -> None:
    subject, cluster = REVIEWED, world.cluster
    cluster.wait_until_parked(subject.request_id, "approve_request", timeout=RUN_TIMEOUT)
    before = world.snapshot()
    for name in WORKERS:  # both workers restart: nobody holds the waiting request
        cluster.stop_worker(name)
        cluster.start_worker(name)
    time.sleep(2)
    assert cluster.task_states(subject.request_id)["approve_request"][0] == "awaiting_input"
    assert world.snapshot() == before  # nothing touched before the approval
    answer(cluster, subject.request_id, "approve_request", "Approve", {"reason": "identity checked"})
    assert cluster.wait_for_run(subject.request_id, timeout=RUN_TIMEOUT) == "success"
    customer = [r for r in world.snapshot()["customer"] if subject.owns(r[0])]
    assert customer[0][2] is None  # the name erased after the approval
    assert world.report(subject)["review"]["event"] == "request_approved"
    assert len(world.emails(subject)) == 1
