"""The fault harness shared by the e2e modules that break a request at a checkpoint and resume it by a clear
(tests/e2e/test_faults.py on LocalExecutor, tests/e2e/test_celery.py on CeleryExecutor).

Subjects are customers with rows in every table of the shop, the same shape as the demo's Jane, each keyed in
its own range so a subject's rows are told apart; ``Faults`` is what a test sees of its world (cluster, SMTP
server, store, webhook remote, the shop as superuser); the checks say "ends as a clean run of the same request
ends, with every side effect once".
"""

from __future__ import annotations

import email
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from sqlalchemy import Connection, Engine, text

from scripts.local_airflow import AirflowCluster
from tests.support.cluster import wait_until
from tests.support.databases import PG_HOST, PG_PORT, PG_USER, load_seed
from tests.support.http_remote import Remote
from tests.support.paths import ROOT
from tests.support.smtp import SmtpServer

__all__ = ["wait_until"]  # re-exported: the fault modules wait with it

OVERLAY = ROOT / "tests" / "e2e" / "faults"  # the fault policies, added to the demo configuration
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


class Calls(list):
    """The Remote's record of calls; it records a call, then asks for its answer, in the same thread."""

    def append(self, call: tuple[str, dict]) -> None:
        super().append(call)
        _this_call.request_id = call[1].get("request_id")


class Answers(dict):
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
    def answers(self) -> Answers:
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


def load_shop(shop: Engine, role: str) -> None:
    """The demo seed (it runs on PostgreSQL as written), the fault subjects, and a login role allowed to read
    and update, nothing more."""
    load_seed(shop)
    with shop.begin() as conn:
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
