"""The request guarantees (no cross-talk between concurrent requests, no personal data where it is not
documented) under a real scheduler, on one Airflow for the whole module.

A suite of requests goes in through the REST API at once, on a demo shop kept in PostgreSQL whose subjects
share rows (a household's address, gifts shipped to another subject's address, a card billed at another's
address, a family phone, a cycle of three): 20 erasure requests for 20 subjects, 2 erasure requests for one
more subject sent together, and 2 access requests. Then:

- concurrency: every run succeeded, each subject's targeted fields are masked and nothing else changed
  (checked row by row against the seed, and by an UPDATE trigger counting each row's updates), one vendor
  email per request, the duplicate refused in ``validate_request`` naming the first, no deadlock;
- leaks: 0 occurrences of the requested subjects' identities and row values (plain, lowercase, JSON-escaped,
  URL-encoded ...) in the task logs and everything else under AIRFLOW_HOME, in every column of every table of
  Airflow's metadata database (XCom and rendered fields included) except the documented ones, and in every
  file of the request store except ``access_package.json``.
"""

from __future__ import annotations

import html
import json
import re
import time
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, create_engine, make_url, text

from scripts.local_airflow import AirflowCluster
from tests.support.cluster import airflow_world
from tests.support.databases import postgresql_engine
from tests.support.paths import DEMO_CONFIG
from tests.support.smtp import SmtpServer

# The module fixture waits for 24 runs (up to 900 s) before the first test: more than the e2e tier's 900 s.
pytestmark = pytest.mark.timeout(1500)

ERASURE, ACCESS = "default_erasure_policy", "default_access_policy"
DAG_RUNS = "/api/v2/dags/privacy_request/dagRuns"

# -- the shop ---------------------------------------------------------------------------------------------------
COLUMNS = {
    "address": ("id", "street", "city", "zip"),
    "customer": ("id", "email", "name", "phone", "address_id", "loyalty_tier", "created"),
    "orders": ("id", "customer_id", "shipping_address_id", "total"),
    "order_item": ("order_id", "line", "product", "quantity"),
    "login": ("id", "customer_id", "time", "ip_address"),
    "payment_card": ("id", "customer_id", "name_on_card", "ccn", "billing_address_id"),
    "sms_subscription": ("id", "phone", "topic"),
}
PRIMARY_KEYS = {"order_item": ("order_id", "line")}
HASHED = "<sha-256 hex>"
# What default_erasure_policy does to a row it reaches; orders, order_item and login hold no targeted field.
MASKED = {
    "customer": {"name": None, "phone": HASHED},
    "address": {"street": "REDACTED", "city": "REDACTED", "zip": "REDACTED"},
    "payment_card": {"name_on_card": None, "ccn": None},
    "sms_subscription": {"phone": HASHED},
}
# Columns holding personal values whose leaks the scan looks for (ids and amounts are too short to search).
PERSONAL = {
    "customer": ("email", "name", "phone"), "address": ("street", "city", "zip"),
    "payment_card": ("name_on_card", "ccn"), "login": ("time", "ip_address"),
    "order_item": ("product",), "sms_subscription": ("phone",),
}
MIN_SEARCHED = 6  # shorter values ("gold", the demo's zip codes "11111") would match unrelated text

# 25 more people (customer id 1000 + k). 1-20 get an erasure request, 21-23 none, 24 an access request,
# 25 two erasure requests at once. Names and streets carry accents and apostrophes so that the JSON-escaped
# forms differ from the plain ones.
PEOPLE = [
    ("Wilhelmina Quartz", "Juniper Crescent", "Northhaven"), ("Bartholomew Quartz", "Larkspur Row", "Eastmere"),
    ("Zoë O'Brien", "Rue de l'Église", "Saint-Étienne-du-Lac"), ("Perpetua Vantongeren", "Cobble Wynd", "Marlow"),
    ("Octavius Vantongeren", "Heron Quay", "Dunmore"), ("Søren Kjærgaard", "Fjordvej", "Aalborg Nord"),
    ("Ifeoma Adeyemi-Clarke", "Baobab Close", "Lekki Phase"), ("Raphaël Dumontier", "Allée des Tilleuls", "Vernonnet"),
    ("Henrietta Pemberton", "Quarry Lane", "Ashbourne"), ("Lysander Whitcombe", "Orchard Mews", "Chilworth"),
    ("Marisol Etxeberria", "Kalea Nagusia", "Zumarraga"), ("Thaddeus Okonkwo", "Palmgrove Way", "Ikoyi Gardens"),
    ("Eulalie Okonkwo", "Tamarind Drive", "Victoria Isle"), ("Cornelius Fairweather", "Windmill Hill", "Stowmarket"),
    ("Genoveva Castellanos", "Calle del Pez", "Villaverde"), ("Benedikt Großmann", "Lindenstraße", "Oberursel"),
    ("Philippa Trevelyan", "Gull Point", "Penzance West"), ("Anselm Drummond", "Thistle Brae", "Kirkcudbright"),
    ("Seraphina Lindqvist", "Björkvägen", "Sundbyberg"), ("Caspian Holloway", "Ferry Reach", "Barnstaple"),
    ("Untouched Mirabelle", "Quiet Close", "Stillwater"), ("Untouched Leopold", "Calm Court", "Restharrow"),
    ("Untouched Ottoline", "Hush Lane", "Sleepy Hollow"), ("Łukasz Żółkiewski", "ulica Różana", "Gdańsk Oliwa"),
    ("Aurelio D'Anconetti", "Via dell'Orso", "Montepulciano"),
]
ERASED = range(1, 21)
UNREQUESTED = (21, 22, 23)
ACCESS_ONLY, DUPLICATE = 24, 25
HOUSEHOLDS = {2: 1, 4: 3, 5: 3}           # subject -> whose home address they live at
GIFTS = {6: 7, 8: 9, 17: 18, 19: 17}      # subject -> whose address one of their orders ships to
CARD_BILLED_AT = {10: 11, 18: 19}         # subject -> whose address their card is billed at
SHARED_PHONE = {13: 12}                   # subject -> whose phone (and SMS subscription) they share


def ascii_slug(value: str) -> str:
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower())


def email_of(k: int) -> str:
    first, last = PEOPLE[k - 1][0].split(" ", 1)
    return f"{ascii_slug(first)}.{ascii_slug(last)}.{k:02d}@mail.example"


def phone_of(k: int) -> str:
    return f"+1202555{SHARED_PHONE.get(k, k):04d}"


def people_rows() -> dict[str, list[tuple]]:
    """The 25 people's rows, with the overlaps above."""
    rows: dict[str, list[tuple]] = {t: [] for t in COLUMNS}
    for k, (name, street, city) in enumerate(PEOPLE, start=1):
        cid, home = 1000 + k, 2000 + k
        rows["address"].append((home, f"{k * 7 + 3} {street}", city, f"QX{k:02d} {k % 9}ZL"))
        rows["customer"].append((cid, email_of(k), name, phone_of(k), 2000 + HOUSEHOLDS.get(k, k),
                                 ("gold", "silver", "bronze")[k % 3], f"2023-{k % 12 + 1:02d}-{k:02d}"))
        rows["orders"].append((5000 + k, cid, home, round(10 + k * 3.17, 2)))
        rows["order_item"] += [(5000 + k, 1, f"Hand-thrown teapot no. {k:02d}", k % 4 + 1),
                               (5000 + k, 2, f"Linen apron size {k:02d}", 1)]
        if k in GIFTS:
            rows["orders"].append((5100 + k, cid, 2000 + GIFTS[k], 25.0))
            rows["order_item"].append((5100 + k, 1, f"Gift hamper for {PEOPLE[GIFTS[k] - 1][0]}", 1))
        rows["payment_card"].append((3000 + k, cid, name.upper(), f"4929{k:04d}{(k * 7919) % 10 ** 8:08d}",
                                     2000 + CARD_BILLED_AT.get(k, k)))
        rows["login"] += [(4000 + k, cid, f"2023-{k % 12 + 1:02d}-{k:02d}T08:{k:02d}:37", f"192.0.2.{100 + k}"),
                          (4100 + k, cid, f"2023-{k % 12 + 1:02d}-{k:02d}T19:{k:02d}:05", f"192.0.2.{100 + k}")]
        if k not in SHARED_PHONE:
            rows["sms_subscription"].append((6000 + k, phone_of(k), ("offers", "alerts")[k % 2]))
    return rows


def key_of(table: str, row: dict[str, Any]) -> tuple:
    return tuple(row[c] for c in PRIMARY_KEYS.get(table, ("id",)))


def read_shop(engine: Engine) -> dict[str, dict[tuple, dict[str, Any]]]:
    """Every row of the shop, by table and primary key."""
    with engine.connect() as conn:
        return {t: {key_of(t, dict(r)): dict(r) for r in conn.execute(text(f"SELECT * FROM {t}")).mappings()}
                for t in COLUMNS}


def reach(seed: dict[str, dict[tuple, dict]], identity: dict[str, str]) -> dict[str, set[tuple]]:
    """The rows a request with this identity finds, by the demo_shop graph (an independent model of it)."""
    customers = {k for k, r in seed["customer"].items() if r["email"] == identity.get("email")}
    ids = {k[0] for k in customers}
    phones = {seed["customer"][k]["phone"] for k in customers} | ({identity["phone_number"]}
                                                                  if "phone_number" in identity else set())
    orders = {k for k, r in seed["orders"].items() if r["customer_id"] in ids}
    cards = {k for k, r in seed["payment_card"].items() if r["customer_id"] in ids}
    addresses = ({seed["customer"][k]["address_id"] for k in customers}
                 | {seed["orders"][k]["shipping_address_id"] for k in orders}
                 | {seed["payment_card"][k]["billing_address_id"] for k in cards})
    order_ids = {k[0] for k in orders}
    return {
        "customer": customers, "orders": orders, "payment_card": cards, "address": {(a,) for a in addresses},
        "login": {k for k, r in seed["login"].items() if r["customer_id"] in ids},
        "order_item": {k for k, r in seed["order_item"].items() if r["order_id"] in order_ids},
        "sms_subscription": {k for k, r in seed["sms_subscription"].items() if r["phone"] in phones},
    }


AUDIT_TRIGGER = """
CREATE TABLE update_audit (tbl text NOT NULL, pk text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION audit_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO update_audit (tbl, pk) VALUES (TG_TABLE_NAME, COALESCE(to_jsonb(NEW) ->> 'id',
      (to_jsonb(NEW) ->> 'order_id') || '/' || (to_jsonb(NEW) ->> 'line')));
  RETURN NEW;
END $$;
"""


def audit_key(table: str, pk: str) -> tuple:
    return tuple(int(p) for p in pk.split("/"))


def load_seed(engine: Engine) -> None:
    """The demo shop's seed (written for SQLite) runs unchanged on PostgreSQL, statement by statement."""
    seed = DEMO_CONFIG / "seed" / "demo_shop.sql"
    body = "\n".join(line for line in seed.read_text().splitlines() if not line.startswith("--"))
    with engine.begin() as conn:
        for statement in filter(None, (s.strip() for s in body.split(";"))):
            conn.execute(text(statement))


@contextmanager
def postgres_shop(base: Path) -> Iterator[Engine]:
    """The demo shop plus the 25 people in a fresh PostgreSQL database (dropped afterwards), every UPDATE of
    a shop row counted by a trigger."""
    with contextmanager(postgresql_engine)(base) as engine:
        load_seed(engine)
        with engine.begin() as conn:
            for table, rows in people_rows().items():
                names = COLUMNS[table]
                conn.execute(text(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                                  f"({', '.join(':' + n for n in names)})"),
                             [dict(zip(names, row, strict=True)) for row in rows])
            conn.exec_driver_sql(AUDIT_TRIGGER)
            for table in COLUMNS:
                conn.exec_driver_sql(f"CREATE TRIGGER audit_{table} AFTER UPDATE ON {table} "
                                     "FOR EACH ROW EXECUTE FUNCTION audit_update()")
        yield engine


# -- the suite of requests --------------------------------------------------------------------------------------
@dataclass
class Request:
    run_id: str
    policy: str
    identity: dict[str, str]
    subject: int | str  # k of PEOPLE, or a demo subject's name


@dataclass(repr=False)  # failure output shows no fixture dump
class Suite:
    cluster: AirflowCluster
    smtp: SmtpServer
    storage: Path
    shop: Engine
    shop_db: str
    seed: dict[str, dict[tuple, dict]]
    requests: list[Request]
    runs: dict[str, dict]  # run id -> the REST API's dag run
    seconds: float
    states: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)

    def report(self, run_id: str) -> dict:
        return json.loads((self.storage / run_id / "report.json").read_text())

    def failures(self, run_ids: list[str]) -> dict[str, str]:
        """Why each of these runs failed, as its report says (the checkpoint and the error, nothing personal)."""
        why = {}
        for run_id in run_ids:
            if self.runs[run_id]["state"] != "success":
                failed = (self.report(run_id).get("failed_checkpoint") if (self.storage / run_id / "report.json")
                          .exists() else None) or {}
                why[run_id] = f"{failed.get('checkpoint')}: {failed.get('error')}: {failed.get('message')}"
        return why


def suite_requests() -> list[Request]:
    dup = {"email": email_of(DUPLICATE)}
    requests = [Request("dup-1", ERASURE, dup, DUPLICATE), Request("dup-2", ERASURE, dup, DUPLICATE)]
    for k in ERASED:
        identity = {"email": email_of(k)}
        if k == 15:  # both identity types
            identity["phone_number"] = phone_of(k)
        requests.append(Request(f"erase-{k:02d}", ERASURE, identity, k))
    requests += [Request("access-john", ACCESS, {"email": "john@example.com", "phone_number": "+15555550199"},
                         "john"),
                 Request(f"access-{ACCESS_ONLY}", ACCESS, {"email": email_of(ACCESS_ONLY)}, ACCESS_ONLY)]
    return requests


def wait_for_all(cluster: AirflowCluster, run_ids: list[str], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = {r["dag_run_id"]: r for r in cluster.get(DAG_RUNS, limit=100)["dag_runs"]}
        open_runs = [i for i in run_ids if runs.get(i, {}).get("state") not in ("success", "failed")]
        if not open_runs:
            return {i: runs[i] for i in run_ids}
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(open_runs)} run(s) not finished after {timeout} s: {open_runs}")
        time.sleep(2)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    base = tmp_path_factory.mktemp("leaks")
    with postgres_shop(base) as shop:
        url = shop.url
        seed = read_shop(shop)
        env = {"AIRFLOW_CONN_DEMO_SHOP_DB": f"postgres://{url.username}@{url.host}:{url.port}/{url.database}",
               # All 24 runs in flight at once (the default caps a DAG at 16 running runs).
               "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "32", "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}
        with airflow_world(base, env=env) as (cluster, smtp, _, storage):
            smtp.start()
            requests = suite_requests()
            started = time.monotonic()
            for request in requests:  # the duplicate pair first: both are validated before either finishes
                cluster.trigger(request.run_id, {"policy": request.policy, "identity": request.identity,
                                                 "request_id": request.run_id})
            # About 4.5 min on an idle 2-core machine (24 runs x 27 tasks, 4 at a time); 9-11 min when other
            # Airflows share it.
            runs = wait_for_all(cluster, [r.run_id for r in requests], timeout=900)
            result = Suite(cluster, smtp, storage, shop, url.database, seed, requests, runs,
                           time.monotonic() - started)
            result.states = {r.run_id: cluster.task_states(r.run_id) for r in requests}
            print(f"\n{len(requests)} requests triggered -> all finished in {result.seconds:.0f} s")
            yield result


def erasure_winner(suite: Suite) -> str:
    winners = [i for i in ("dup-1", "dup-2") if suite.runs[i]["state"] == "success"]
    assert len(winners) == 1, {i: suite.runs[i]["state"] for i in ("dup-1", "dup-2")}
    return winners[0]


def executed_erasures(suite: Suite) -> list[Request]:
    """The erasure requests that ran: the 20, and whichever of the duplicate pair won."""
    winner = erasure_winner(suite)
    return [r for r in suite.requests if r.policy == ERASURE and (r.subject != DUPLICATE or r.run_id == winner)]


def vendor_emails(suite: Suite) -> Counter:
    """Erasure emails received, by the request id their subject names."""
    ids = Counter()
    for received in suite.smtp.received:
        match = re.search(r"\(([^()]+)\)$", received.message["Subject"])
        ids[match[1] if match else "?"] += 1
        assert received.envelope_to == ["privacy@daycare-vendor.example"]
    return ids


# -- B. concurrency ---------------------------------------------------------------------------------------------
def test_twenty_erasures_in_flight_on_overlapping_subjects_mask_exactly_their_rows(suite: Suite) -> None:
    erasures = [r for r in suite.requests if r.run_id.startswith("erase-")]
    assert len(erasures) == 20
    assert not suite.failures([r.run_id for r in erasures])
    for r in suite.requests:
        if r.policy == ACCESS:
            assert suite.runs[r.run_id]["state"] == "success", r.run_id
            assert (suite.storage / r.run_id / "access_package.json").exists()

    # They were in flight together: at one moment at least 20 runs were running.
    def ts(value: str) -> float:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    spans = [(ts(r["start_date"]), ts(r["end_date"])) for r in suite.runs.values()]
    most = max(sum(1 for s, e in spans if s <= moment < e) for moment, _ in spans)
    assert most >= 20, f"at most {most} runs were running at the same time"

    # The shop, row by row: what an erasure reached is masked, every other value is as seeded.
    ran = executed_erasures(suite)
    reached: dict[str, Counter] = {t: Counter() for t in COLUMNS}
    for request in ran:
        for table, keys in reach(suite.seed, request.identity).items():
            reached[table].update(keys)
    after = read_shop(suite.shop)
    problems = []
    for table, rows in suite.seed.items():
        assert set(after[table]) == set(rows), f"{table}: rows added or deleted"
        for key, before in rows.items():
            now = after[table][key]
            masks = MASKED.get(table, {}) if reached[table][key] else {}
            for column in COLUMNS[table]:
                expected = masks.get(column, before[column])
                if expected == HASHED:
                    ok = bool(re.fullmatch(r"[0-9a-f]{64}", now[column] or "")) and now[column] != before[column]
                else:
                    ok = now[column] == expected
                if not ok:
                    problems.append(f"{table}{list(key)}.{column}: {'not masked' if masks else 'changed'}")
    assert not problems, f"{len(problems)} wrong value(s):\n" + "\n".join(problems[:40])

    # A subject's phone hashes to one value in customer and sms_subscription (the masking request's salt); a
    # family phone's subscription carries the hash of one of the two requests that reached it.
    for key in (k for k in suite.seed["sms_subscription"] if reached["sms_subscription"][k]):
        original = suite.seed["sms_subscription"][key]["phone"]
        candidates = {after["customer"][c]["phone"] for c, r in suite.seed["customer"].items()
                      if r["phone"] == original and reached["customer"][c]}
        assert after["sms_subscription"][key]["phone"] in candidates, f"sms_subscription{list(key)}"

    # Every UPDATE the shop saw: each reached row once per request that reached it (a subscription found by a
    # phone another request had already hashed is not found again), nothing else, and what the reports say.
    with suite.shop.connect() as conn:
        audit = Counter((t, audit_key(t, pk)) for t, pk in conn.execute(text("SELECT tbl, pk FROM update_audit")))
    wrong = []
    for table in COLUMNS:
        for key in suite.seed[table]:
            expected, got = (reached[table][key] if table in MASKED else 0), audit[(table, key)]
            found_by_value = table == "sms_subscription" and expected > 1
            if not (1 <= got <= expected if found_by_value else got == expected):
                wrong.append(f"{table}{list(key)}: updated {got} time(s), expected {expected}")
    assert not wrong, "\n".join(wrong)
    reported = sum(suite.report(r.run_id)["rows_masked"] for r in ran)
    assert reported == sum(audit.values()), f"reports say {reported} rows masked, the database saw " \
                                            f"{sum(audit.values())} row updates"
    assert all(suite.report(r.run_id)["status"] == "complete" for r in ran)

    # One vendor email per erasure request that ran, none for the refused duplicate or the access requests.
    assert vendor_emails(suite) == Counter({r.run_id: 1 for r in ran})
    print(f"20 erasures + 1 of a duplicate pair + 2 access requests in flight together (at most {most} running); "
          f"{sum(audit.values())} row updates = reports' rows_masked; {len(suite.smtp.received)} vendor emails")


def test_two_requests_for_the_same_subject_at_once_one_runs_one_is_refused(suite: Suite) -> None:
    winner = erasure_winner(suite)
    loser = "dup-2" if winner == "dup-1" else "dup-1"
    assert suite.runs[loser]["state"] == "failed"
    states = suite.states[loser]
    assert states.pop("validate_request") == ("failed", 1)
    assert {state for state, _ in states.values()} == {"upstream_failed"}, states

    report = suite.report(loser)
    assert report["status"] == "failed" and report["rows_masked"] == 0
    message = report["failed_checkpoint"]["message"]
    assert f"request '{winner}' for the same subject and policy is still in progress" in message
    assert report["failed_checkpoint"]["checkpoint"] == "validate_request"

    # Nothing masked twice: each row of the subject was updated exactly once, by the winner.
    own = reach(suite.seed, {"email": email_of(DUPLICATE)})
    with suite.shop.connect() as conn:
        audit = Counter((t, audit_key(t, pk)) for t, pk in conn.execute(text("SELECT tbl, pk FROM update_audit")))
    for table in MASKED:
        for key in own[table]:
            assert audit[(table, key)] == 1, f"{table}{list(key)} updated {audit[(table, key)]} time(s)"
    assert suite.report(winner)["rows_masked"] == sum(len(own[t]) for t in MASKED)
    emails = vendor_emails(suite)
    assert (emails[winner], emails[loser]) == (1, 0)


LOCK_TROUBLE = re.compile(r"deadlock|lock timeout|lock_timeout|LockNotAvailable|could not obtain lock|"
                          r"database is locked|could not serialize|SerializationFailure", re.IGNORECASE)


def test_no_deadlock_lock_timeout_or_retry(suite: Suite) -> None:
    # PostgreSQL counts the deadlocks it detected and broke, per database: the shop and Airflow's metadata.
    metadata_db = make_url(suite.cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).database
    with suite.shop.connect() as conn:
        deadlocks = dict(conn.execute(text("SELECT datname, deadlocks FROM pg_stat_database WHERE datname IN "
                                           "(:shop, :meta)"), {"shop": suite.shop_db, "meta": metadata_db}).all())
    assert deadlocks == {suite.shop_db: 0, metadata_db: 0}

    files = [p for p in suite.cluster.home.rglob("*") if p.is_file() and p.suffix in (".log", ".json", "")]
    troubled = [str(p.relative_to(suite.cluster.home)) for p in files
                if LOCK_TROUBLE.search(p.read_text(errors="replace"))]
    assert not troubled, f"lock trouble in {troubled}"

    # No task failed or was retried, except the refused duplicate's validate_request.
    loser = "dup-2" if erasure_winner(suite) == "dup-1" else "dup-1"
    bad = {(run_id, task): state for run_id, states in suite.states.items() for task, state in states.items()
           if state[1] > 1 or state[0] not in ("success", "skipped")}
    assert set(bad) - {(loser, t) for t in suite.states[loser]} == set(), bad
    print(f"deadlocks {deadlocks}; {len(files)} log files without lock trouble; "
          f"{sum(len(s) for s in suite.states.values())} task instances, none retried")


# -- A. leaks ---------------------------------------------------------------------------------------------------
# Where Airflow keeps identity values by design (README, "What Airflow keeps"): the trigger conf, the audit log
# of the trigger call, and a person's questions and answers. A new column holding one fails the test.
DOCUMENTED = {
    ("dag_run", "conf"): "the trigger conf",
    ("log", "extra"): "Airflow's audit log of the trigger call (its body)",
    ("hitl_detail", "subject"): "question to a person", ("hitl_detail", "body"): "question to a person",
    ("hitl_detail", "params"): "question's form", ("hitl_detail", "params_input"): "a person's answer",
    ("hitl_detail_history", "subject"): "question to a person",
    ("hitl_detail_history", "body"): "question to a person",
    ("hitl_detail_history", "params"): "question's form",
    ("hitl_detail_history", "params_input"): "a person's answer",
}
DELIVERABLES = ("access_package.json", "access_package.html", "access_package.zip")  # the rows, by design


def forms(value: str) -> set[str]:
    """How a value can be written down: plain, JSON-escaped (ASCII or not, once or twice), URL-encoded,
    HTML-escaped, SQL-quoted; lower-cased, as the text searched is."""
    escaped = json.dumps(value)[1:-1]
    return {f.lower() for f in (value, escaped, json.dumps(value, ensure_ascii=False)[1:-1],
                                json.dumps(escaped)[1:-1], quote(value, safe=""), quote_plus(value),
                                html.escape(value), value.replace("'", "''"))}


class Needles:
    """Every searched value's forms, each with labels saying whose value it is, never the value itself."""

    def __init__(self) -> None:
        self.labels: dict[str, set[str]] = {}
        self.values: set[str] = set()

    def add(self, value: Any, label: str) -> None:
        if isinstance(value, str) and len(value) >= MIN_SEARCHED:
            self.values.add(value)
            for form in forms(value):
                self.labels.setdefault(form, set()).add(label)

    def find(self, haystack: str) -> set[str]:
        lowered = haystack.lower()
        return {label for form, labels in self.labels.items() if form in lowered for label in labels}


def needles_for(suite: Suite) -> Needles:
    """The identities of every request, and every personal value of the rows each request reaches, as seeded."""
    needles = Needles()
    for request in suite.requests:
        for kind, value in request.identity.items():
            needles.add(value, f"{request.run_id} identity.{kind}")
        for table, keys in reach(suite.seed, request.identity).items():
            for key in keys:
                for column in PERSONAL.get(table, ()):
                    needles.add(suite.seed[table][key][column], f"{request.run_id} {table}.{column}")
    return needles


def readable(raw: bytes) -> str:
    """Bytes as text, decompressed first when they are zlib or gzip data (serialized DAGs)."""
    for wbits in (15, 31):
        try:
            return zlib.decompress(raw, wbits).decode("utf-8", "replace")
        except zlib.error:
            pass
    return raw.decode("utf-8", "replace")


def scan_metadata(suite: Suite, needles: Needles) -> tuple[dict[str, set[str]], dict[str, set[str]], Counter]:
    """Every column of every table of Airflow's metadata database: (hits, documented hits, counts)."""
    hits: dict[str, set[str]] = {}
    documented: dict[str, set[str]] = {}
    counts: Counter = Counter()
    engine = create_engine(suite.cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with engine.connect() as conn:
            columns: dict[str, list[tuple[str, str]]] = {}
            for table, column, data_type in conn.execute(text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")):
                columns.setdefault(table, []).append((column, data_type))
            tables = {t: conn.execute(text("SELECT {} FROM \"{}\"".format(
                ", ".join(f'"{c}"' if d == "bytea" else f'"{c}"::text' for c, d in cols), t))).all()
                for t, cols in columns.items()}
    finally:
        engine.dispose()
    for table, cols in columns.items():
        rows = tables[table]
        counts["tables"] += 1
        counts["rows"] += len(rows)
        counts[f"rows:{table}"] = len(rows)
        for index, (column, data_type) in enumerate(cols):
            counts["columns"] += 1
            if data_type in ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY"):
                counts["text/json/bytea columns"] += 1
            values = [readable(bytes(r[index])) if data_type == "bytea" else r[index]
                      for r in rows if r[index] is not None]
            found = needles.find("\x00".join(values))
            if found:
                (documented if (table, column) in DOCUMENTED else hits)[f"{table}.{column}"] = found
    return hits, documented, counts


def scan_files(root: Path, needles: Needles, skip: tuple[str, ...] = ()) -> tuple[dict[str, set[str]], list[Path]]:
    hits: dict[str, set[str]] = {}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in skip)
    for path in files:
        found = needles.find(readable(path.read_bytes()))
        if found:
            hits[str(path.relative_to(root))] = found
    return hits, files


def encrypted(path: Path, fernet: Fernet) -> bool:
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    try:
        return bool(lines) and all(fernet.decrypt(line) is not None for line in lines)
    except InvalidToken:
        return False


def summary(hits: dict[str, set[str]]) -> str:
    return "\n".join(f"  {where}: {', '.join(sorted(labels)[:6])}{' ...' if len(labels) > 6 else ''}"
                     for where, labels in sorted(hits.items()))


def test_no_personal_data_outside_the_documented_places(suite: Suite) -> None:
    needles = needles_for(suite)
    home = suite.cluster.home

    home_hits, home_files = scan_files(home, needles)
    task_logs = [p for p in home_files if "run_id=" in str(p)]
    logged = {part.removeprefix("run_id=") for p in task_logs for part in p.parts if part.startswith("run_id=")}
    assert logged >= {r.run_id for r in suite.requests}, "task logs not where the scan looks"
    meta_hits, documented, counts = scan_metadata(suite, needles)
    assert counts["rows:xcom"] > 0 and "rows:rendered_task_instance_fields" in counts  # no templated field: 0 rows
    store_hits, store_files = scan_files(suite.storage, needles, skip=DELIVERABLES)
    fernet = Fernet(suite.cluster.env["AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY"])
    clear = sorted(str(p.relative_to(suite.storage)) for p in store_files if not encrypted(p, fernet))

    # The scan finds what is there: every identity in the trigger confs, the access packages' rows.
    identities = {label for labels in needles.labels.values() for label in labels if " identity." in label}
    assert documented.get("dag_run.conf", set()) >= identities
    package_hits, _ = scan_files(suite.storage / f"access-{ACCESS_ONLY}", needles)
    assert any(".name" in label for label in package_hits.get("access_package.json", set()))

    report = (f"leak scan: {len(needles.values)} values ({len(needles.labels)} forms) of {len(suite.requests)} "
              f"requests; {len(home_files)} files under AIRFLOW_HOME ({len(task_logs)} task logs); "
              f"{counts['tables']} tables, {counts['columns']} columns ({counts['text/json/bytea columns']} "
              f"text/json/bytea), {counts['rows']} rows ({counts['rows:xcom']} XCom, "
              f"{counts['rows:rendered_task_instance_fields']} rendered fields); {len(store_files)} store files "
              f"({len(store_files) - len(clear)} encrypted); documented places holding values: "
              f"{', '.join(f'{w} ({len(v)})' for w, v in sorted(documented.items()))}")
    print(report)
    leaks = [f"{where}:\n{summary(hits)}" for where, hits in (
        (f"under AIRFLOW_HOME ({home})", home_hits), ("in Airflow's metadata database", meta_hits),
        (f"in clear in the request store ({suite.storage})", store_hits)) if hits]
    assert not leaks, "personal data found (where: whose value)\n" + "\n".join(leaks)
    # Clear files are the reports, their certificates and the subject claims (request ids only); everything
    # else is encrypted.
    assert all(c.endswith(("/report.json", "/certificate.html")) or c.startswith("_subjects/") for c in clear), clear
