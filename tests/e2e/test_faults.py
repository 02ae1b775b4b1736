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

import email
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import pytest
from sqlalchemy import Connection, Engine, text

from scripts.local_airflow import AirflowCluster
from tests.dag.conftest import SmtpServer
from tests.e2e.conftest import airflow_world
from tests.http_remote import Remote
from tests.integration.conftest import PG_HOST, PG_PORT, PG_USER, postgresql_engine

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = Path(__file__).parent / "faults"
POLICY = "fault_erasure_policy"
SALT = "fault-tests"  # the hash salt of fault_erasure_policy (faults/policies/fault_policies.yml)
WEBHOOKS = {"/started": "crm_started", "/ready": "crm_ready", "/done": "crm_done"}
ACCESS_CUSTOMER = "access.demo_shop.customer"
ERASE_CUSTOMER = "erasure.demo_shop.customer"
SEND = "erasure_email_send.daycare_vendor"
# Each table's first column says whose a row is: every key of a subject lies in [base, base + 1000).
TABLES = ("customer", "address", "orders", "order_item", "login", "payment_card", "sms_subscription")


@dataclass(frozen=True)
class Subject:
    """A customer with rows in every table of the shop, the same shape as the demo's Jane."""

    n: int

    @property
    def base(self) -> int:
        return 1000 * self.n

    @property
    def email(self) -> str:
        return f"subject{self.n}@example.com"

    @property
    def phone(self) -> str:
        return f"+1555123{self.n:04d}"

    @property
    def request_id(self) -> str:
        return f"fault-{self.n}"

    def owns(self, key: int) -> bool:
        return self.base <= key < self.base + 1000

    def rows(self) -> dict[str, list[tuple]]:
        b = self.base
        return {
            "address": [(b + 1, "1 Main Street", "Springfield", "11111"),
                        (b + 2, "3 Ocean Drive", "Capital City", "33333")],
            "customer": [(b, self.email, "Sam Subject", self.phone, b + 1, "gold", "2024-01-05")],
            "orders": [(b + 10, b, b + 2, 42.5), (b + 11, b, b + 1, 12.0)],
            "order_item": [(b + 10, 1, "Blue mug", 2), (b + 10, 2, "Tea towel", 1), (b + 11, 1, "Notebook", 3)],
            "login": [(b + 100, b, "2024-05-01T10:00:00", "203.0.113.7"),
                      (b + 101, b, "2024-05-02T11:30:00", "203.0.113.7")],
            "payment_card": [(b + 200, b, "Sam Subject", "4111111111111111", b + 1)],
            "sms_subscription": [(b + 300, self.phone, "offers")],
        }

    def normalized(self, value: Any) -> Any:
        """The value with what makes this subject itself replaced: its keys, email, phone and phone hash."""
        if isinstance(value, int) and not isinstance(value, bool) and self.owns(value):
            return value - self.base
        if isinstance(value, str):
            return {self.email: "<email>", self.phone: "<phone>", hashed(self.phone): "<hash(phone)>"}.get(value, value)
        return value


REFERENCE, SMTP_REFUSING, WEBHOOK_5XX, KILLED, DB_DOWN, NO_UPDATE = SUBJECTS = tuple(Subject(n) for n in range(1, 7))
SIDE_BY_SIDE = (REFERENCE, SMTP_REFUSING, WEBHOOK_5XX, KILLED)  # triggered together when the module starts


def hashed(value: str) -> str:
    return hashlib.sha256((value + SALT).encode()).hexdigest()


_this_call = threading.local()  # the request id of the webhook call the Remote's current thread serves


class _Calls(list):
    """The Remote's record of calls; it records a call, then asks for its answer, in the same thread."""

    def append(self, call: tuple[str, dict]) -> None:
        super().append(call)
        _this_call.request_id = call[1].get("request_id")


class _Answers(dict):
    """The Remote's answer queues (path -> [(status, body)]), plus queues for one request's calls of a
    path, and gates that hold one request's call of a path (already recorded) until the test opens them."""

    def __init__(self) -> None:
        super().__init__()
        self.for_request: dict[tuple[str, str], list[tuple[int, dict]]] = {}
        self.gates: dict[tuple[str, str], threading.Event] = {}

    def get(self, path: str, default: Any = None) -> Any:
        key = (path, getattr(_this_call, "request_id", None))
        gate = self.gates.pop(key, None)
        if gate is not None:
            gate.wait(timeout=25)  # the webhook's HTTP timeout is 30 s
        return self.for_request.get(key) or super().get(path, default)

    @contextmanager
    def hold(self, path: str, subject: Subject) -> Iterator[None]:
        self.gates[(path, subject.request_id)] = gate = threading.Event()
        try:
            yield
        finally:
            self.gates.pop((path, subject.request_id), None)
            gate.set()


@dataclass
class Faults:
    cluster: AirflowCluster
    smtp: SmtpServer
    storage: Path
    remote: Remote
    shop: Engine  # superuser on the shop database (the tasks connect as `role`)
    role: str
    before: dict[str, list[tuple]]  # every table before any request
    smtp_refusing: set[str] = field(default_factory=set)  # request ids whose emails the SMTP server refuses
    smtp_refused: list[str] = field(default_factory=list)  # the subjects of the emails it refused
    row_lock: Connection | None = None
    _reference: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> _Answers:
        return self.remote.answers  # type: ignore[return-value]

    @property
    def database(self) -> str:
        return str(self.shop.url.database)

    @property
    def reference(self) -> dict[str, Any]:
        """The clean run's final state and report (waited for once)."""
        if not self._reference:
            assert self.cluster.wait_for_run(REFERENCE.request_id) == "success"
            self._reference.update(state=self.final_state(REFERENCE), report=self.report(REFERENCE))
        return self._reference

    def sql(self, statement: str, **params: Any) -> list[tuple]:
        with self.shop.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []

    def on_server(self, statement: str) -> None:
        """A statement run from the server's `postgres` database (a database cannot close itself)."""
        with closing(psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                                      connect_timeout=5)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)

    def snapshot(self) -> dict[str, list[tuple]]:
        return {t: self.sql(f"SELECT * FROM {t} ORDER BY 1, 2") for t in TABLES}

    def report(self, subject: Subject) -> dict:
        return json.loads((self.storage / subject.request_id / "report.json").read_text())

    def emails(self, subject: Subject) -> list:
        return [m for m in self.smtp.received if f"({subject.request_id})" in str(m.message["Subject"])]

    def webhook_calls(self, subject: Subject) -> dict[str, int]:
        calls: dict[str, int] = {}
        for path, body in list(self.remote.calls):
            if body.get("request_id") == subject.request_id:
                calls[path] = calls.get(path, 0) + 1
        return calls

    def final_state(self, subject: Subject) -> dict[str, Any]:
        """The subject's rows and access package, normalized, so that two subjects' states compare."""
        tables = {t: sorted(tuple(subject.normalized(v) for v in row) for row in rows if subject.owns(row[0]))
                  for t, rows in self.snapshot().items()}
        package = json.loads((self.storage / subject.request_id / "access_package.json").read_text())
        package = {name: sorted(json.dumps({k: subject.normalized(v) for k, v in row.items()}, sort_keys=True)
                                for row in rows) for name, rows in package.items()}
        return {"tables": tables, "package": package}

    def wait_idle(self, timeout: float = 180) -> None:
        """Until no request runs: a fault on the whole database must hit one request only."""
        def idle() -> bool:
            runs = self.cluster.get("/api/v2/dags/privacy_request/dagRuns", state=["queued", "running"])
            return runs["total_entries"] == 0
        wait_until(idle, timeout, "requests still running")

    def trigger(self, subject: Subject) -> None:
        self.cluster.trigger(subject.request_id, {"policy": POLICY, "identity": {"email": subject.email},
                                                  "request_id": subject.request_id})


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} after {timeout} s")


def load_shop(shop: Engine, role: str) -> None:
    """The demo seed (it runs on PostgreSQL as written), the fault subjects, and a login role allowed to read
    and update, nothing more."""
    statements = [s.strip() for s in (ROOT / "include/privacy/seed/demo_shop.sql").read_text().split(";")]
    with shop.begin() as conn:
        for statement in statements:
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                conn.execute(text(body))
        for subject in SUBJECTS:
            for table, rows in subject.rows().items():
                marks = ", ".join(f":v{i}" for i in range(len(rows[0])))
                conn.execute(text(f"INSERT INTO {table} VALUES ({marks})"),
                             [{f"v{i}": v for i, v in enumerate(row)} for row in rows])
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}"))


def drop_role(shop: Engine, role: str) -> None:
    with shop.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role})
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))


def refusing_smtp(world: Faults) -> Callable:
    """A DATA handler that refuses (451) the emails of the requests in ``world.smtp_refusing``."""
    collect = world.smtp.handler.handle_DATA  # the server's own: keeps what it accepts

    async def handle_data(server: Any, session: Any, envelope: Any) -> str:
        subject = str(email.message_from_bytes(envelope.content)["Subject"])
        if any(f"({request_id})" in subject for request_id in world.smtp_refusing):
            world.smtp_refused.append(subject)
            return "451 4.3.0 Mail system temporarily unavailable"
        return await collect(server, session, envelope)

    return handle_data


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    """One Airflow for the module, the shop on PostgreSQL, webhooks on a real HTTP server; the reference and
    the faults that hit one request only are armed and triggered at once."""
    base = tmp_path_factory.mktemp("faults")
    remote = Remote()
    remote.calls, remote.answers = _Calls(), _Answers()
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


def others_untouched(before: dict[str, list[tuple]], after: dict[str, list[tuple]],
                     *changing: Subject) -> None:
    """Rows of nobody in ``changing`` are as they were (the demo's Jane, John and Ada are never requested)."""
    def ours(key: int) -> bool:
        return any(s.owns(key) for s in changing)

    for table in TABLES:
        assert [r for r in after[table] if not ours(r[0])] == [r for r in before[table] if not ours(r[0])], \
            f"{table}: rows of others changed"


def assert_like_a_clean_run(world: Faults, subject: Subject, failed: str, states_before: dict,
                            webhook_calls: dict[str, int] | None = None) -> dict:
    """The run resumed after the fix ends as the reference ended, with every side effect once."""
    assert world.cluster.wait_for_run(subject.request_id) == "success"
    after = world.cluster.task_states(subject.request_id)
    assert after[failed] == ("success", states_before[failed][1] + 1)
    for task, (state, try_number) in states_before.items():
        if state in ("success", "skipped"):
            assert after[task] == (state, try_number), f"{task} ran again"

    assert world.final_state(subject) == world.reference["state"]  # masked once, as a clean run masks

    report, clean = world.report(subject), world.reference["report"]
    assert report["status"] == "complete" and report["failed_checkpoint"] is None
    for total in ("rows_found", "rows_masked", "emails_sent"):
        assert report[total] == clean[total], total
    assert report["emails_sent"] == 1
    masked = [e["collection"] for e in report["events"] if e["event"] == "collection_masked"]
    assert sorted(masked) == sorted(e["collection"] for e in clean["events"] if e["event"] == "collection_masked")

    assert len(world.emails(subject)) == 1  # counted at the SMTP server
    assert world.webhook_calls(subject) == (webhook_calls or {path: 1 for path in WEBHOOKS})  # at the HTTP server
    called = [(e["webhook"], e["status"]) for e in report["events"] if e["event"] == "webhook_called"]
    assert sorted(called) == sorted((name, 200) for name in WEBHOOKS.values())  # each succeeded once
    return report


def failed_at(world: Faults, subject: Subject, checkpoint: str) -> dict:
    assert world.cluster.wait_for_run(subject.request_id) == "failed"
    report = world.report(subject)
    assert report["status"] == "failed"
    assert report["failed_checkpoint"]["checkpoint"] == checkpoint
    return report["failed_checkpoint"]


def masked_at_try(report: dict) -> dict[str, int]:
    return {e["collection"]: e["try_number"] for e in report["events"] if e["event"] == "collection_masked"}


def blocked_update(world: Faults) -> int | None:
    """The backend of an erasure UPDATE on customer waiting for a row lock, if there is one."""
    rows = world.sql("SELECT pid FROM pg_stat_activity WHERE datname = :db AND usename = :role "
                     "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE customer%'",
                     db=world.database, role=world.role)
    return rows[0][0] if rows else None


def task_process(cluster: AirflowCluster, ti_id: str) -> psutil.Process | None:
    """The process running a task instance (its title is `airflow worker -- <ti id>`), under our scheduler."""
    ours = {p.pid for p in cluster.processes}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if f"airflow worker -- {ti_id}" in " ".join(proc.info["cmdline"] or []) and \
                    ours & {p.pid for p in proc.parents()}:
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def test_task_killed_mid_erasure(faults: Faults) -> None:
    """First: until the kill, the blocked task holds one of the executor's four slots."""
    subject, cluster, lock = KILLED, faults.cluster, faults.row_lock
    assert lock is not None
    try:
        backend = wait_until(lambda: blocked_update(faults), 180, "no erasure UPDATE waiting on customer")
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
