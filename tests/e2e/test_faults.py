"""Faults at the checkpoints of a request, under a real scheduler (LocalExecutor, retries 0), each fixed and
resumed by clearing the failed task through the REST API: a database unreachable during access, a database
refusing writes (a revoked privilege), an SMTP server refusing the vendor email, a webhook answering 5xx, and
a task process killed with SIGKILL in the middle of an erasure UPDATE.

After the fix and the clear, each request must end as a clean run of the same request ends (the reference:
a request for a subject whose data has the same shape, run without any fault): the same masked rows, access
package and report totals, nobody else's rows touched, and no side effect twice: vendor emails counted at
the SMTP server, webhook calls counted at the HTTP server, the hash applied once (the policy hashes with a
fixed salt, so a value hashed twice is told apart).

The shop is a PostgreSQL database reached as a role without superuser rights, so that a privilege can be
revoked. One Airflow serves the module. The faults that hit one request only (an email refused, a webhook's
503, a row lock and a kill) run side by side with the reference from the start; the two that hit the whole
database (closed to connections, a privilege revoked) run afterwards, alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from tests.support.cluster import airflow_world
from tests.support.databases import PG_HOST, PG_PORT, postgresql_engine
from tests.support.faults import (
    ACCESS_CUSTOMER,
    DB_DOWN,
    ERASE_CUSTOMER,
    KILLED,
    NO_UPDATE,
    OVERLAY,
    REFERENCE,
    SEND,
    SIDE_BY_SIDE,
    SMTP_REFUSING,
    WEBHOOK_5XX,
    WEBHOOKS,
    Answers,
    Calls,
    Faults,
    assert_like_a_clean_run,
    blocked_update,
    drop_role,
    failed_at,
    load_shop,
    masked_at_try,
    others_untouched,
    refusing_smtp,
    task_process,
    wait_until,
)
from tests.support.http_remote import Remote


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    """One Airflow for the module, the shop on PostgreSQL, webhooks on a real HTTP server; the reference and
    the faults that hit one request only are armed and triggered at once."""
    base = tmp_path_factory.mktemp("faults")
    remote = Remote()
    remote.calls, remote.answers = Calls(), Answers()
    role = f"prq_faults_{secrets.token_hex(4)}"
    try:
        with contextmanager(postgresql_engine)(base) as shop:
            load_shop(shop, role)
            try:
                env = {"AIRFLOW_CONN_DEMO_SHOP_DB": f"postgres://{role}@{PG_HOST}:{PG_PORT}/{shop.url.database}",
                       "AIRFLOW_CONN_FAULTS_CRM": remote.url}
                with airflow_world(base, OVERLAY, env) as (cluster, smtp, _, storage):
                    world = Faults(cluster, smtp, storage, remote, shop, role, before={})
                    world.before = world.snapshot()
                    smtp.handler.handle_DATA = refusing_smtp(world)  # type: ignore[method-assign]
                    smtp.start()
                    world.smtp_refusing.add(SMTP_REFUSING.request_id)
                    world.answers.for_request[("/ready", WEBHOOK_5XX.request_id)] = [(503, {"error": "maintenance"})]
                    world.row_lock = shop.connect()  # KILLED's customer row: its erasure UPDATE will wait on it
                    world.row_lock.execute(text("SELECT 1 FROM customer WHERE id = :id FOR UPDATE"),
                                           {"id": KILLED.base})
                    try:
                        for subject in SIDE_BY_SIDE:
                            world.trigger(subject)
                        yield world
                    finally:
                        world.row_lock.rollback()
                        world.row_lock.close()
            finally:
                drop_role(shop, role)
    finally:
        remote.stop()



def test_task_killed_mid_erasure(faults: Faults) -> None:
    """First: until the kill, the blocked task holds one of the executor's four slots."""
    subject, cluster, lock = KILLED, faults.cluster, faults.row_lock
    assert lock is not None
    try:
        backend = wait_until(lambda: blocked_update(faults), 600, "no erasure UPDATE waiting on customer")
        assert cluster.task_states(subject.request_id)[ERASE_CUSTOMER][0] == "running"
        ti_id = cluster.get(f"/api/v2/dags/privacy_request/dagRuns/{subject.request_id}/taskInstances/"
                            f"{ERASE_CUSTOMER}")["id"]
        process = wait_until(lambda: task_process(cluster, ti_id), 10, f"no process runs task instance {ti_id}")
        process.kill()  # SIGKILL: no exception handler, no failure record, no rollback from the client
        process.wait(timeout=10)
        assert cluster.wait_for_run(subject.request_id) == "failed"
    finally:
        lock.rollback()
    # The orphaned UPDATE finds its client gone: its transaction is rolled back, nothing was masked.
    wait_until(lambda: not faults.sql("SELECT 1 FROM pg_stat_activity WHERE pid = :pid", pid=backend), 30,
               f"backend {backend} of the killed task still there")
    states = cluster.task_states(subject.request_id)
    assert states[ERASE_CUSTOMER] == ("failed", 1)
    assert states["erasure.demo_shop.sms_subscription"] == ("success", 1)  # masked its phone: hash once
    assert states[SEND][0] == "upstream_failed" and faults.emails(subject) == []
    assert [r for r in faults.snapshot()["customer"] if subject.owns(r[0])] == subject.rows()["customer"]

    assert cluster.clear(subject.request_id, [ERASE_CUSTOMER]) == sorted(
        [ERASE_CUSTOMER, SEND, "post_webhooks", "finalize"])
    report = assert_like_a_clean_run(faults, subject, ERASE_CUSTOMER, states)
    assert masked_at_try(report)["demo_shop:customer"] == 2

    # Cleared again once finished, the masking, the email and the post-webhook run once more (the rows
    # found are deleted by now): each finds its ledger entry and repeats nothing.
    done, calls = faults.final_state(subject), faults.webhook_calls(subject)
    again = sorted([ERASE_CUSTOMER, SEND, "post_webhooks", "finalize"])
    tries = {task: try_number for task, (_, try_number) in cluster.task_states(subject.request_id).items()}
    assert cluster.clear(subject.request_id, [ERASE_CUSTOMER], only_failed=False) == again
    assert cluster.wait_for_run(subject.request_id) == "success"
    states = cluster.task_states(subject.request_id)
    assert {task: states[task] for task in again} == {task: ("success", tries[task] + 1) for task in again}
    assert faults.final_state(subject) == done  # nothing masked again (a hash of the hash would show)
    assert len(faults.emails(subject)) == 1 and faults.webhook_calls(subject) == calls
    assert masked_at_try(faults.report(subject)) == masked_at_try(report)
    assert faults.report(subject)["emails_sent"] == 1


def test_the_clean_reference_run(faults: Faults) -> None:
    """What every faulty request must end like: this subject's rows masked once, nobody else's touched."""
    state, report = faults.reference["state"], faults.reference["report"]
    assert state["tables"]["customer"] == [(0, "<email>", None, "<hash(phone)>", 1, "gold", "2024-01-05")]
    assert state["tables"]["sms_subscription"] == [(300, "<hash(phone)>", "offers")]
    assert state["tables"]["address"] == [(1, "REDACTED", "REDACTED", "REDACTED"),
                                          (2, "REDACTED", "REDACTED", "REDACTED")]
    assert state["tables"]["payment_card"] == [(200, 0, None, None, 1)]
    assert state["tables"]["orders"] == [(10, 0, 2, 42.5), (11, 0, 1, 12.0)]  # not targeted: as they were
    assert '"name": "Sam Subject"' in state["package"]["demo_shop:customer"][0]  # read before erasure
    others_untouched(faults.before, faults.snapshot(), *SIDE_BY_SIDE)
    assert report["status"] == "complete" and report["emails_sent"] == 1
    assert report["rows_masked"] == 5  # customer, sms_subscription, two addresses, payment card
    assert len(faults.emails(REFERENCE)) == 1
    assert faults.webhook_calls(REFERENCE) == {path: 1 for path in WEBHOOKS}


def test_smtp_refusing_then_accepting(faults: Faults) -> None:
    subject, cluster = SMTP_REFUSING, faults.cluster
    try:
        failure = failed_at(faults, subject, SEND)
    finally:
        faults.smtp_refusing.discard(subject.request_id)  # the server accepts its emails again
    states = cluster.task_states(subject.request_id)
    assert states[SEND] == ("failed", 1)
    assert len(faults.smtp_refused) == 1 and faults.emails(subject) == []  # refused once, not counted as sent
    assert failure["error"] == "TransientError" and "451" in failure["message"]

    assert cluster.clear(subject.request_id, [SEND]) == sorted([SEND, "post_webhooks", "finalize"])
    assert_like_a_clean_run(faults, subject, SEND, states)
    assert len(faults.smtp_refused) == 1


def test_webhook_answering_5xx_then_200(faults: Faults) -> None:
    subject, cluster = WEBHOOK_5XX, faults.cluster
    failure = failed_at(faults, subject, "pre_webhooks")
    assert faults.answers.for_request[("/ready", subject.request_id)] == []  # its one 503 was answered
    states = cluster.task_states(subject.request_id)
    assert states["pre_webhooks"] == ("failed", 1) and states[ACCESS_CUSTOMER][0] == "upstream_failed"
    assert faults.webhook_calls(subject) == {"/started": 1, "/ready": 1}
    assert failure["error"] == "TransientError" and "HTTP 503" in failure["message"]
    assert [r for r in faults.snapshot()["customer"] if subject.owns(r[0])] == subject.rows()["customer"]

    cleared = cluster.clear(subject.request_id, ["pre_webhooks"])
    assert "pre_webhooks" in cleared and "validate_request" not in cleared
    # /started succeeded before the fault and is not called again; /ready is called again, and succeeds.
    assert_like_a_clean_run(faults, subject, "pre_webhooks", states,
                            webhook_calls={"/started": 1, "/ready": 2, "/done": 1})


def test_the_side_by_side_requests_touched_only_their_subjects(faults: Faults) -> None:
    """After the tests above: the four requests run at once never touched anyone else's rows."""
    for subject in SIDE_BY_SIDE:
        assert faults.cluster.wait_for_run(subject.request_id) == "success"
    others_untouched(faults.before, faults.snapshot(), *SIDE_BY_SIDE)


def test_database_unreachable_during_access_then_back(faults: Faults) -> None:
    """Alone: closing the database to connections would fail any request that queries it meanwhile."""
    subject, cluster = DB_DOWN, faults.cluster
    faults.wait_idle()
    before = faults.snapshot()
    allow = f'ALTER DATABASE "{faults.database}" ALLOW_CONNECTIONS {{}}'
    try:
        with faults.answers.hold("/ready", subject):  # the last pre-webhook: right before the first query
            faults.trigger(subject)
            wait_until(lambda: faults.webhook_calls(subject).get("/ready"), 60, "no call of /ready")
            faults.on_server(allow.format("false"))
        failure = failed_at(faults, subject, ACCESS_CUSTOMER)
    finally:
        faults.on_server(allow.format("true"))
    states = cluster.task_states(subject.request_id)
    assert states[ACCESS_CUSTOMER] == ("failed", 1)
    assert states["pre_webhooks"] == ("success", 1) and states[ERASE_CUSTOMER][0] == "upstream_failed"
    assert "not currently accepting connections" in failure["message"]
    assert faults.snapshot() == before and faults.emails(subject) == []

    cleared = cluster.clear(subject.request_id, [ACCESS_CUSTOMER])
    assert ACCESS_CUSTOMER in cleared and SEND in cleared
    assert not {"validate_request", "pre_webhooks"} & set(cleared)
    assert_like_a_clean_run(faults, subject, ACCESS_CUSTOMER, states)
    others_untouched(before, faults.snapshot(), subject)


def test_an_unreachable_database_is_a_transient_failure(faults: Faults) -> None:
    """DESIGN: transient failures (database, SMTP, HTTP) raise AirflowException so that Airflow retries."""
    failures = [e for e in faults.report(DB_DOWN)["events"] if e["event"] == "checkpoint_failed"]
    assert [e["checkpoint"] for e in failures] == [ACCESS_CUSTOMER], "run test_database_unreachable_... first"
    assert failures[0]["error"] == "TransientError"


def test_database_refusing_writes_then_granted(faults: Faults) -> None:
    """Alone: the revoked privilege would refuse every request's erasure of customer meanwhile."""
    subject, cluster = NO_UPDATE, faults.cluster
    faults.wait_idle()
    before = faults.snapshot()
    try:
        faults.sql(f"REVOKE UPDATE ON customer FROM {faults.role}")
        faults.trigger(subject)
        failure = failed_at(faults, subject, ERASE_CUSTOMER)
    finally:
        faults.sql(f"GRANT UPDATE ON customer TO {faults.role}")
    states = cluster.task_states(subject.request_id)
    assert states[ERASE_CUSTOMER] == ("failed", 1)
    assert states["erasure.demo_shop.payment_card"] == ("success", 1)  # the other collections went on
    assert states[SEND][0] == "upstream_failed" and faults.emails(subject) == []
    assert "permission denied for table customer" in failure["message"]
    assert failure["error"] == "DataSourceError"  # no retry: a person must fix the privilege
    partly = faults.snapshot()
    assert [r for r in partly["customer"] if subject.owns(r[0])] == subject.rows()["customer"]
    assert [r[2] for r in partly["payment_card"] if subject.owns(r[0])] == [None]

    assert cluster.clear(subject.request_id, [ERASE_CUSTOMER]) == sorted(
        [ERASE_CUSTOMER, SEND, "post_webhooks", "finalize"])
    report = assert_like_a_clean_run(faults, subject, ERASE_CUSTOMER, states)
    assert masked_at_try(report)["demo_shop:customer"] == 2
    assert masked_at_try(report)["demo_shop:payment_card"] == 1
    others_untouched(before, faults.snapshot(), subject)
