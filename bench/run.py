"""Benchmark: how fast, how lean and how far Airflow Privacy Requests scales on one machine.

    ./scripts/bench.sh            # the full benchmark (PostgreSQL on 127.0.0.1; see docs/performance.md for how long)
    ./scripts/bench.sh --quick    # a smoke run on small data (about 1 minute)
    ./scripts/bench.sh --only batch [--quick]   # a batch of 10,000 (1,000) erasure subjects, a real scheduler
    ./scripts/bench.sh --only batch --subjects 100000   # the same with 100,000 subjects
    ./scripts/bench.sh --only pages [--quick]   # page times with two batches of 100,000 (10,000) subjects present
    ./scripts/bench.sh --only proof   # erasing a subject who owns 10,006 rows, with and without proof of erasure
    ./scripts/bench.sh --only executors   # LocalExecutor vs CeleryExecutor with 1 and 2 workers, 50 in flight
    ./scripts/bench.sh --only drop [--rows N]   # a DROP Email list of 1,000,000 hashes (N), half matching
    ./scripts/bench.sh --only warehouses [--quick]   # one subject's 10,000 (1,000) records erased on each stand-in

Prints one table: each figure, what it is compared against, and the target.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import data  # noqa: E402

BENCH_DB = os.environ.get("PRQ_BENCH_DB", "prq_bench")  # a name of its own where several people share a server


@dataclass
class Figure:
    measure: str
    result: str
    against: str
    target: str
    met: bool | None = None

    def row(self) -> list[str]:
        met = "" if self.met is None else ("yes" if self.met else "NO")
        return [self.measure, self.result, self.against, self.target, met]


# -- 1. engine efficiency ----------------------------------------------------------------------------
def engine_run(config_dir: Path, url: str) -> tuple[float, int]:
    """Access + erasure of the subject by the engine in-process; returns (seconds, statements)."""
    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine

    from include.privacy_requests.connectors.sql import SqlConnector
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.request.lifecycle import start_request
    from include.privacy_requests.request.request import open_request
    from include.privacy_requests.steps.collection_steps import access_collection, erase_collection

    config = load_config(config_dir)
    engine = create_engine(url)
    connectors: list[SqlConnector] = []

    def connector_for(_dataset: str) -> SqlConnector:
        connectors.append(SqlConnector(engine))
        return connectors[-1]

    with tempfile.TemporaryDirectory() as store_root:
        conf = {"policy": "bench_erasure", "identity": {"email": data.SUBJECT}, "request_id": "bench"}
        request = open_request(config, conf, "bench", Path(store_root), Fernet.generate_key().decode())
        start_request(request, "bench", "2026-01-01T00:00:00+00:00")
        started = time.perf_counter()
        for address in config.plan.order:
            access_collection(request, address, connector_for)
        for address in config.plan.order:
            erase_collection(request, address, connector_for, try_number=1)
        elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, sum(c.statements for c in connectors)


def lower_bound_run(dbname: str) -> tuple[float, int]:
    """The same work by hand with the fewest statements: one SELECT and one UPDATE per collection."""
    conn = data.connect(dbname)
    conn.autocommit = False
    statements = 0
    started = time.perf_counter()
    found: dict[str, list[int]] = {}
    with conn.cursor() as cur:
        for table, parent, key in data.tables():
            values = [data.SUBJECT] if parent is None else found[parent]
            cur.execute(f"SELECT * FROM {table} WHERE {key} = ANY(%s)", (values,))
            found[table] = [row[0] for row in cur.fetchall()]
            statements += 1
        for table, _, _ in data.tables():
            if found[table]:
                cur.execute(f"UPDATE {table} SET name = NULL WHERE id = ANY(%s)", (found[table],))
                statements += 1
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, statements


def engine_efficiency(work: Path, sizes: data.Sizes, repeats: int) -> list[Figure]:
    url = data.recreate_database(BENCH_DB)
    load_started = time.perf_counter()
    data.load_graph(BENCH_DB, sizes)
    load_seconds = time.perf_counter() - load_started
    config_dir = data.write_config(work / "graph", data.tables())
    engine_times, bound_times = [], []
    engine_run(config_dir, url)  # warm-up: imports, connection pool, statement caches
    data.restore_names(BENCH_DB)
    statements = bound_statements = 0
    for _ in range(repeats):
        seconds, statements = engine_run(config_dir, url)
        engine_times.append(seconds)
        data.restore_names(BENCH_DB)
        seconds, bound_statements = lower_bound_run(BENCH_DB)
        bound_times.append(seconds)
        data.restore_names(BENCH_DB)
    engine_s, bound_s = statistics.median(engine_times), statistics.median(bound_times)
    ratio = engine_s / bound_s
    collections = len(data.tables())
    return [
        Figure(f"engine: access + erasure, {collections} collections (largest {sizes.largest:,} rows; "
               f"data loaded in {load_seconds:.0f} s)",
               f"{engine_s * 1000:.0f} ms", f"hand-written lower bound {bound_s * 1000:.0f} ms", "", None),
        Figure("engine / lower bound", f"{ratio:.2f}", f"median of {repeats} runs each", "<= 1.3", ratio <= 1.3),
        Figure("SQL statements per collection", f"{statements / collections:.2f}",
               f"lower bound {bound_statements / collections:.2f}", "", None),
    ]


# -- 1b. what proof of erasure costs, for a subject who owns 10,006 rows --------------------------------------
PROOF_TABLES = [("customer", None, "email"), ("orders", "customer", "customer_id"),
                ("address", "customer", "customer_id")]


def _proof_data(dbname: str, owned: int) -> None:
    """customer (100,000 rows; the subject is one), orders (10 x ``owned`` rows, ``owned`` of them the
    subject's), address (100,000 rows, 5 the subject's): the subject owns 1 + ``owned`` + 5 rows."""
    conn = data.connect(dbname)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE customer (id integer PRIMARY KEY, email text, name text)")
        cur.execute("INSERT INTO customer SELECT g, CASE WHEN g = 1 THEN %s ELSE 'c' || g || '@example.com' END, "
                    "'name ' || g FROM generate_series(1, 100000) g", (data.SUBJECT,))
        cur.execute("CREATE INDEX ON customer (email)")
        cur.execute("CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, name text)")
        cur.execute("INSERT INTO orders SELECT g, CASE WHEN g %% 10 = 0 THEN 1 ELSE 2 + g %% 99998 END, "
                    "'name ' || g FROM generate_series(1, %s) g", (owned * 10,))
        cur.execute("CREATE INDEX ON orders (customer_id)")
        cur.execute("CREATE TABLE address (id integer PRIMARY KEY, customer_id integer, name text)")
        cur.execute("INSERT INTO address SELECT g, CASE WHEN g <= 5 THEN 1 ELSE 2 + g % 99998 END, 'name ' || g "
                    "FROM generate_series(1, 100000) g")
        cur.execute("CREATE INDEX ON address (customer_id)")
        cur.execute("ANALYZE")
    conn.close()


def _proof_erasure(config_dir: Path, url: str, policy: str, proof: bool) -> tuple[float, int, int, float]:
    """Access (not timed), then the erasure of every collection by the engine in-process, with or without
    the proof of erasure; returns (erasure seconds, rows masked, SQL statements of the erasure, seconds spent
    proving it)."""
    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine

    from include.privacy_requests.connectors.sql import SqlConnector
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.request.lifecycle import start_request
    from include.privacy_requests.request.request import open_request
    from include.privacy_requests.steps.collection_steps import access_collection, erase_collection

    proving = [0.0]

    class WithoutProof(SqlConnector):
        def verify(self, work, masks, masked, checks=None):  # type: ignore[no-untyped-def]
            return masked

    class Timed(SqlConnector):
        def verify(self, work, masks, masked, checks=None):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return super().verify(work, masks, masked, checks)
            finally:
                proving[0] += time.perf_counter() - started

    config = load_config(config_dir)
    engine = create_engine(url)
    made: list[SqlConnector] = []

    def connector_for(_dataset: str) -> SqlConnector:
        made.append((Timed if proof else WithoutProof)(engine))
        return made[-1]

    with tempfile.TemporaryDirectory() as store_root:
        conf = {"policy": policy, "identity": {"email": data.SUBJECT}, "request_id": "proof"}
        request = open_request(config, conf, "proof", Path(store_root), Fernet.generate_key().decode())
        start_request(request, "proof", "2026-01-01T00:00:00+00:00")
        for address in config.plan.order:
            access_collection(request, address, lambda _: SqlConnector(engine))
        started = time.perf_counter()
        masked = sum(erase_collection(request, address, connector_for, try_number=1).masked
                     for address in config.plan.order)
        elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, masked, sum(c.statements for c in made), proving[0]


def _proof_lower_bound(dbname: str) -> float:
    """The erasure by hand: one UPDATE per collection by the keys access found, psycopg2, one transaction."""
    conn = data.connect(dbname)
    conn.autocommit = False
    with conn.cursor() as cur:
        found: dict[str, list[int]] = {}
        for table, parent, key in PROOF_TABLES:
            values = [data.SUBJECT] if parent is None else found[parent]
            cur.execute(f"SELECT id FROM {table} WHERE {key} = ANY(%s)", (values,))
            found[table] = [row[0] for row in cur.fetchall()]
        started = time.perf_counter()
        for table, _, _ in PROOF_TABLES:
            cur.execute(f"UPDATE {table} SET name = NULL WHERE id = ANY(%s)", (found[table],))
        conn.commit()
        elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def proof_split(work: Path, owned: int, repeats: int) -> list[Figure]:
    """The erasure of one subject owning 1 + ``owned`` + 5 rows in three collections, by the engine with and
    without proof of erasure (runs alternate, medians), next to the hand-written lower bound; for
    ``null_rewrite`` and for a salted SHA-512 ``hash``. Prints ``proof of erasure: N% of erasure time``."""
    dbname = f"{BENCH_DB}_proof"
    url = data.recreate_database(dbname)
    _proof_data(dbname, owned)
    config_dir = data.write_config(work / "proof", PROOF_TABLES)
    policies = yaml.safe_load((config_dir / "policies" / "bench.yml").read_text())
    policies["policy"].append({"key": "bench_hash", "rules": [
        {"key": "names", "action": "erasure", "targets": ["user.name"], "masking_strategy": {
            "strategy": "hash", "configuration": {"algorithm": "SHA-512", "salt": "bench-salt"}}}]})
    (config_dir / "policies" / "bench.yml").write_text(yaml.safe_dump(policies))

    def restore() -> None:
        conn = data.connect(dbname)
        with conn.cursor() as cur:
            for table, _, _ in PROOF_TABLES:
                cur.execute(f"UPDATE {table} SET name = 'name ' || id WHERE name IS NULL OR name NOT LIKE 'name %%'")
        conn.close()

    figures = []
    try:
        for policy, label in (("bench_erasure", "null_rewrite"), ("bench_hash", "hash SHA-512, salted")):
            for proof in (True, False):  # warm-up: imports, pools, statement caches
                _proof_erasure(config_dir, url, policy, proof)
                restore()
            runs: dict[bool, list[float]] = {True: [], False: []}
            shares: list[float] = []  # per run with proof: the time inside the proof / the erasure's
            statements: dict[bool, int] = {}
            masked = 0
            for _ in range(repeats):
                for proof in (True, False):
                    seconds, masked, statements[proof], proving = _proof_erasure(config_dir, url, policy, proof)
                    runs[proof].append(seconds)
                    if proof:
                        shares.append(proving / seconds)
                    restore()
            bound = []
            if policy == "bench_erasure":
                for _ in range(repeats):
                    bound.append(_proof_lower_bound(dbname))
                    restore()
            with_proof, without = statistics.median(runs[True]), statistics.median(runs[False])
            # Measured inside each run (the proof's own time over that run's erasure): on a loaded machine the
            # difference of two runs' medians moves more with the load than with the proof.
            share = statistics.median(shares)
            print(f"proof of erasure: {share:.0%} of erasure time ({label}, {masked:,} rows; with proof "
                  f"{with_proof * 1000:.0f} ms, without {without * 1000:.0f} ms)", flush=True)
            against = (f"without proof {without * 1000:.0f} ms ({statements[False]} statements); hand-written lower "
                       f"bound {statistics.median(bound) * 1000:.0f} ms" if bound
                       else f"without proof {without * 1000:.0f} ms ({statements[False]} statements)")
            figures += [
                Figure(f"erasure of a subject owning {masked:,} rows (3 collections), {label}, with proof "
                       f"({statements[True]} statements)", f"{with_proof * 1000:.0f} ms", against, "", None),
                Figure(f"proof of erasure: share of erasure time, {label}", f"{share:.0%}",
                       f"time inside the proof / erasure time, median of {repeats} runs (with - without: "
                       f"{max(with_proof - without, 0) / with_proof:.0%}); load {os.getloadavg()[0]:.1f}",
                       "<= 25%", share <= 0.25),
            ]
    finally:
        data.drop_database(dbname)
    return figures


# -- 2. set-based erasure ------------------------------------------------------------------------------
def erasure_strategy(rows: int) -> list[Figure]:
    """Masking the rows a subject owns in one table: set-based (the engine) against one UPDATE per row."""
    from sqlalchemy import create_engine, text

    from include.privacy_requests.connectors.sql import SqlConnector
    from include.privacy_requests.model.graph import Collection, CollectionAddress, FieldSpec
    from include.privacy_requests.model.masking import FieldMask, Masker, new_request_secrets

    url = data.recreate_database(f"{BENCH_DB}_erasure")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE owned (id integer PRIMARY KEY, owner text, name text)"))
        conn.execute(text("INSERT INTO owned SELECT g, CASE WHEN g <= :n THEN 's' ELSE 'o' END, 'name ' || g "
                          "FROM generate_series(1, :total) g"), {"n": rows, "total": rows * 10})
    found = [{"id": i, "name": f"name {i}"} for i in range(1, rows + 1)]
    collection = Collection(CollectionAddress("bench", "owned"),
                            [FieldSpec("id", primary_key=True), FieldSpec("name")])
    secrets = new_request_secrets()

    def restore() -> None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE owned SET name = 'name ' || id"))

    def set_based(strategy: str) -> tuple[float, int]:
        restore()
        connector = SqlConnector(engine)
        started = time.perf_counter()
        connector.mask(collection, iter(found), {"name": FieldMask(Masker(strategy, {}, secrets))})
        return time.perf_counter() - started, connector.statements

    def per_row(strategy: str = "null_rewrite") -> float:  # the engine this project replaces: one UPDATE per row
        restore()
        mask = FieldMask(Masker(strategy, {}, secrets))
        with engine.begin() as conn:
            started = time.perf_counter()
            for row in found:
                conn.execute(text("UPDATE owned SET name = :v WHERE id = :id"),
                             {"v": mask.apply(row["name"]), "id": row["id"]})
            return time.perf_counter() - started

    strategies = ("null_rewrite", "hash", "hmac", "aes_encrypt")
    set_based("null_rewrite")  # warm the connection pool and the statement caches of both sides
    set_based("hash")
    per_row()
    # Each round runs every strategy both ways back to back; a speed-up is the median of the rounds' ratios,
    # so a load that changes between rounds moves both sides of a ratio alike.
    rounds = [{s: (set_based(s), per_row(s)) for s in strategies} for _ in range(5)]
    engine.dispose()
    data.drop_database(f"{BENCH_DB}_erasure")
    statements = rounds[0]["null_rewrite"][0][1]
    figures = []
    for strategy in strategies:
        took = statistics.median(r[strategy][0][0] for r in rounds)
        row_by_row = statistics.median(r[strategy][1] for r in rounds)
        speedup = statistics.median(r[strategy][1] / r[strategy][0][0] for r in rounds)
        how = "one value for all rows" if strategy == "null_rewrite" else "a value per row: join with (key, value)"
        figures.append(Figure(f"erasure of {rows:,} rows in one table, {strategy} ({how}, {statements} UPDATEs)",
                              f"{took * 1000:.0f} ms", f"one UPDATE per row: {row_by_row * 1000:.0f} ms; "
                              f"{speedup:.1f}x faster (medians of 5)", ">= 10x faster", speedup >= 10))
    return figures


# -- 3. memory of the access task -----------------------------------------------------------------------
def probe_memory(config_dir: str, url: str, baseline: bool) -> None:
    """Run in a child process: the access step on one collection; prints peak RSS and rows as JSON."""
    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine

    from include.privacy_requests.connectors.sql import SqlConnector
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.request.request import open_request
    from include.privacy_requests.steps.collection_steps import access_collection

    config = load_config(config_dir)
    rows = 0
    if not baseline:
        engine = create_engine(url)
        with tempfile.TemporaryDirectory() as store_root:
            conf = {"policy": "bench_access", "identity": {"email": data.SUBJECT}, "request_id": "mem"}
            request = open_request(config, conf, "mem", Path(store_root), Fernet.generate_key().decode())
            rows = access_collection(request, config.plan.order[0], lambda _: SqlConnector(engine)).rows
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak_kb / 1024, "rows": rows}))


def memory(work: Path, rows: int) -> list[Figure]:
    dbname = f"{BENCH_DB}_memory"
    url = data.recreate_database(dbname)
    conn = data.connect(dbname)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE bulk (id integer PRIMARY KEY, email text, name text)")
        cur.execute("INSERT INTO bulk SELECT g, %s, 'name ' || g FROM generate_series(1, %s) g",
                    (data.SUBJECT, rows))
    conn.close()
    config_dir = data.write_config(work / "memory", [("bulk", None, "email")])

    def child(baseline: bool) -> dict:
        args = [sys.executable, __file__, "--probe-memory", str(config_dir), url] + (["--baseline"] if baseline else [])
        out = subprocess.run(args, check=True, capture_output=True, text=True, env=_env()).stdout
        return json.loads(out.strip().splitlines()[-1])

    base, run = child(True), child(False)
    data.drop_database(dbname)
    return [Figure(f"peak RSS of the access step for a subject matching {run['rows']:,} rows",
                   f"{run['peak_mb']:.0f} MB", f"same process without the query: {base['peak_mb']:.0f} MB",
                   "< 300 MB", run["peak_mb"] < 300)]


# -- 4. DAG parse time ---------------------------------------------------------------------------------
def probe_parse(config_dir: str) -> None:
    """Run in a child process with Airflow imported, as the dag-processor has it: time parsing the DAG file."""
    os.environ["PRIVACY_REQUESTS_CONFIG_DIR"] = config_dir
    from airflow.dag_processing.dagbag import DagBag

    times = []
    for _ in range(3):
        started = time.perf_counter()
        bag = DagBag(dag_folder=str(ROOT / "dags" / "privacy_request.py"))
        times.append(time.perf_counter() - started)
        assert not bag.import_errors, bag.import_errors
    print(json.dumps({"first": times[0], "again": min(times[1:]), "tasks": len(bag.dags["privacy_request"].tasks)}))


def parse_times(work: Path, counts: list[int]) -> list[Figure]:
    figures = []
    for count in counts:
        folder = data.chain_config(work / f"parse{count}", count)
        args = [sys.executable, __file__, "--probe-parse", str(folder)]
        result = json.loads(subprocess.run(args, check=True, capture_output=True, text=True,
                                           env=_env()).stdout.strip().splitlines()[-1])
        met = result["first"] < 1.0 if count >= 500 else None
        figures.append(Figure(f"DAG parse, {count} collections ({result['tasks']} tasks)",
                              f"{result['first'] * 1000:.0f} ms", f"re-parse {result['again'] * 1000:.0f} ms",
                              "< 1 s at 500", met))
    return figures


# -- 5. a real scheduler -------------------------------------------------------------------------------
def scheduler(work: Path, in_flight: int) -> list[Figure]:
    from aiosmtpd.controller import Controller

    from scripts.demo import free_port
    from scripts.local_airflow import AirflowCluster
    from scripts.smtp_sink import EmlFolderHandler

    shop = work / "shop.db"
    _bench_shop(shop, in_flight)
    meta_url = data.recreate_database(f"{BENCH_DB}_airflow")
    smtp_port = free_port()
    sink = Controller(EmlFolderHandler(work / "mailbox"), hostname="127.0.0.1", port=smtp_port)
    sink.start()
    cluster = AirflowCluster(work / "airflow", free_port(), _demo_env(work, shop, meta_url, smtp_port, in_flight))
    def conf(index: int) -> dict:  # one subject per request: two open requests for one subject are refused
        return {"policy": "default_erasure_policy", "identity": {"email": _bench_email(index)}}

    try:
        cluster.start()
        cluster.trigger("warm-up", {**conf(-1), "request_id": "warm-up"})
        cluster.wait_for_run("warm-up", timeout=300)
        started = time.monotonic()
        cluster.trigger("single", {**conf(-2), "request_id": "single"})
        state = cluster.wait_for_run("single", timeout=300)
        latency = time.monotonic() - started
        gap, duration, tasks = _task_overhead(cluster, "single")
        states, wall = _load(cluster, conf, in_flight)
    finally:
        cluster.stop()
        sink.stop()
        data.drop_database(f"{BENCH_DB}_airflow")
    per_hour = in_flight / wall * 3600
    return [
        Figure(f"trigger -> success, one erasure request on the demo ({tasks} tasks; {state})",
               f"{latency:.1f} s", f"task work itself: {duration:.2f} s on average per task", "", None),
        Figure("Airflow overhead per task (start - upstream end)", f"{gap:.2f} s",
               "LocalExecutor, parallelism 4, PostgreSQL metadata DB, idle sleep 0.1 s", "", None),
        Figure(f"throughput, {in_flight} requests in flight ({states.count('success')} succeeded)",
               f"{per_hour:.0f} requests/hour", f"{wall:.0f} s for all", ">= 300/hour",
               per_hour >= 300 and states.count("success") == in_flight),
    ]


def _task_overhead(cluster, run_id: str) -> tuple[float, float, int]:
    """Mean gap between a task's start and the end of its last upstream task, and mean task duration."""
    tasks = cluster.get("/api/v2/dags/privacy_request/tasks")["tasks"]
    upstream: dict[str, list[str]] = {t["task_id"]: [] for t in tasks}
    for t in tasks:
        for down in t["downstream_task_ids"]:
            upstream[down].append(t["task_id"])
    run = cluster.get(f"/api/v2/dags/privacy_request/dagRuns/{run_id}")
    tis = cluster.get(f"/api/v2/dags/privacy_request/dagRuns/{run_id}/taskInstances", limit=500)["task_instances"]
    by_id = {ti["task_id"]: ti for ti in tis}

    def ts(value: str) -> float:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    gaps, durations = [], []
    for task_id, ti in by_id.items():
        if not ti.get("start_date") or not ti.get("end_date"):
            continue
        ready = max((ts(by_id[u]["end_date"]) for u in upstream[task_id] if by_id[u].get("end_date")),
                    default=ts(run["start_date"]))
        gaps.append(ts(ti["start_date"]) - ready)
        durations.append(ts(ti["end_date"]) - ts(ti["start_date"]))
    return statistics.mean(gaps), statistics.mean(durations), len(by_id)


# -- 7. DROP lists ------------------------------------------------------------------------------------
def drop(work: Path, rows: int) -> list[Figure]:
    """An Email list of ``rows`` hashes, half matching, against a ``rows``-row table (bench/drop.py); prints
    ``drop: <N> list rows/hour``."""
    import os as _os

    from bench.drop import run_drop

    dbname = "drop_prq_bench"
    try:
        result = run_drop(data.recreate_database(dbname), rows, work / "drop")
    finally:
        data.drop_database(dbname)
    seconds = sum(result["times"].values())
    per_hour = rows / seconds * 3600
    print(f"drop: {per_hour:.0f} list rows/hour", flush=True)
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in result["times"].items())
    return [
        Figure(f"drop: {rows:,} Email hashes vs {rows:,}-row PostgreSQL table, half matching "
               f"({result['subjects']:,} consumers to erase)", f"{per_hour:,.0f} list rows/hour",
               f"{steps}; load {_os.getloadavg()[0]:.1f}", ">= 1,000,000/hour", per_hour >= 1_000_000),
        Figure("drop: peak RSS (receive, match, respond)", f"{result['peak_mb']:.0f} MB", "child process",
               "< 1 GB", result["peak_mb"] < 1024),
    ]


# -- 6. a batch through a real scheduler ---------------------------------------------------------------
def batch(work: Path, subjects: int) -> list[Figure]:
    """A batch of ``subjects`` erasure subjects end to end (bench/batch.py); prints ``batch: <N> subjects/hour``."""
    from bench.batch import median_statements, run_batch

    dbname, metadata = f"{BENCH_DB}_batch", f"{BENCH_DB}_batch_airflow"
    try:
        url = data.recreate_database(dbname)
        result = run_batch(work / "batch", subjects, data.recreate_database(metadata), url,
                           f"postgres://{data.PG['user']}@{data.PG['host']}:{data.PG['port']}/{dbname}")
    finally:
        data.drop_database(dbname)
        data.drop_database(metadata)
    per_hour = subjects / result.seconds * 3600
    print(f"batch: {per_hour:.0f} subjects/hour (load average {result.load[0]:.1f} at the trigger, "
          f"{result.load[1]:.1f} at the end)", flush=True)
    access, erasure = median_statements(result.statements)
    figures = [
        Figure(f"batch of {subjects:,} erasure subjects, trigger -> {result.state} (20 collections, "
               f"{result.rows_masked if result.rows_masked is not None else '?'} rows masked)",
               f"{per_hour:,.0f} subjects/hour", f"{result.seconds:.0f} s; population loaded in "
               f"{result.load_seconds:.0f} s", ">= 1,000,000/hour at 10,000 and 100,000",
               # a batch's fixed cost (task starts) dominates the quick run: not judged
               per_hour >= 1_000_000 and result.state == "success" if subjects >= 10_000 else None),
        Figure("batch: load average (1 min) at the trigger / at the end", f"{result.load[0]:.1f} / "
               f"{result.load[1]:.1f}", f"{os.cpu_count()} cores, shared with whatever else runs", "", None),
        Figure("batch: SQL statements per collection, access", access, "from the batch report", "", None),
        Figure("batch: SQL statements per collection, erasure", erasure, "from the batch report", "", None),
        Figure("batch: peak RSS of the largest task", f"{result.peak[0]:.0f} MB", result.peak[1][:60],
               "< 1 GB", result.peak[0] < 1024),
    ]
    total = sum(span for _, _, span, _, _ in result.checkpoints) or 1.0
    figures += [Figure(f"batch checkpoint {name} ({tasks} task{'s' if tasks > 1 else ''})",
                       f"{span:.1f} s ({span / total:.0%})", f"slowest task {slowest:.1f} s ({task_id})", "", None)
                for name, tasks, span, slowest, task_id in result.checkpoints]
    return figures


# -- pages: the Privacy requests pages with large batches present -----------------------------------------
def pages(work: Path, subjects: int) -> list[Figure]:
    """Page times of /privacy/ and the batch pages with two batches of ``subjects`` inline subjects present
    (a conf of megabytes each) and two single requests. The batch DAG is paused, so its runs stay
    queued with every task row created: the pages read them as they would read running batches."""
    from aiosmtpd.controller import Controller

    from scripts.demo import free_port
    from scripts.local_airflow import AirflowCluster
    from scripts.smtp_sink import EmlFolderHandler

    shop = work / "pages-shop.db"
    _bench_shop(shop, 2)
    meta_url = data.recreate_database(f"{BENCH_DB}_pages_airflow")
    smtp_port = free_port()
    sink = Controller(EmlFolderHandler(work / "pages-mailbox"), hostname="127.0.0.1", port=smtp_port)
    sink.start()
    cluster = AirflowCluster(work / "pages-airflow", free_port(), _demo_env(work, shop, meta_url, smtp_port, 4))
    conf_bytes = 0
    try:
        cluster.start()
        for index in range(2):
            _post(cluster, "/api/v2/dags/privacy_request/dagRuns", {
                "dag_run_id": f"page-{index}", "logical_date": None, "conf": {
                    "policy": "default_erasure_policy", "request_id": f"page-{index}",
                    "identity": {"email": _bench_email(index)}}})
        # The pages list these requests whatever their state: no need to wait for them to finish.
        cluster.session.patch(f"{cluster.base}/api/v2/dags/privacy_request_batch", json={"is_paused": True},
                              timeout=300).raise_for_status()
        for index in range(2):
            conf = {"batch_id": f"pages-{index}", "policy": "default_access_policy",
                    "subjects": [{"request_id": f"p{index}-{i}", "identity": {"email": f"s{i}@example.com"}}
                                 for i in range(subjects)]}
            conf_bytes = len(json.dumps(conf))
            _post(cluster, "/api/v2/dags/privacy_request_batch/dagRuns",
                  {"dag_run_id": f"pages-{index}", "logical_date": None, "conf": conf})
        timings = {path: _page_seconds(cluster, path) for path in
                   ("/privacy/", "/privacy/api/requests", "/privacy/api/batches", "/privacy/batches/pages-0",
                    "/privacy/requests/page-0")}
    finally:
        cluster.stop()
        sink.stop()
        data.drop_database(f"{BENCH_DB}_pages_airflow")
    against = (f"2 batches of {subjects:,} inline subjects present ({conf_bytes / 2**20:.1f} MB conf each); "
               "12.7 s for /privacy/ before (issue 20)")
    load = os.getloadavg()[0]
    return [Figure(f"page time {path} (median of 5)", f"{seconds:.2f} s", f"{against}; load {load:.0f}",
                   "< 0.5 s", seconds < 0.5) for path, seconds in timings.items()]


def _post(cluster, path: str, body: dict) -> None:
    """A POST that may take long on a loaded machine (a conf of megabytes)."""
    cluster.session.post(f"{cluster.base}{path}", json=body, timeout=600).raise_for_status()


def _page_seconds(cluster, path: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats + 1):  # the first warms the plugin's caches (configuration, batch reports)
        started = time.monotonic()
        response = cluster.session.get(f"{cluster.base}{path}", timeout=300)
        times.append(time.monotonic() - started)
        response.raise_for_status()
    return statistics.median(times[1:])


# -- 7. executors: LocalExecutor, CeleryExecutor with one and two workers ---------------------------------
EXECUTOR_SETUPS = [("LocalExecutor", 0), ("CeleryExecutor, 1 worker", 1), ("CeleryExecutor, 2 workers", 2)]
BENCH_BROKER = "redis://127.0.0.1:6379/5"


def executors(work: Path, in_flight: int) -> list[Figure]:
    """The same load on each executor, with four task slots in all (parallelism 4; one worker of
    concurrency 4, or two of 2), the store on the local disk and the demo shop in SQLite for all three."""
    figures = []
    for label, workers in EXECUTOR_SETUPS:
        per_hour, wall, gap, duration, states = _executor_run(work / f"executor-{workers}", workers, in_flight)
        figures.append(Figure(f"{label}: throughput, {in_flight} requests in flight "
                              f"({states.count('success')} succeeded)", f"{per_hour:.0f} requests/hour",
                              f"{wall:.0f} s for all; per task {gap:.2f} s overhead, {duration:.2f} s work",
                              "", None))
    return figures


def _executor_run(work: Path, workers: int, in_flight: int) -> tuple[float, float, float, float, list[str]]:
    from aiosmtpd.controller import Controller

    from scripts.celery_airflow import CeleryCluster
    from scripts.demo import free_port
    from scripts.local_airflow import AirflowCluster
    from scripts.smtp_sink import EmlFolderHandler

    work.mkdir(parents=True)
    shop = work / "shop.db"
    _bench_shop(shop, in_flight)
    meta_url = data.recreate_database(f"{BENCH_DB}_airflow")
    smtp_port = free_port()
    sink = Controller(EmlFolderHandler(work / "mailbox"), hostname="127.0.0.1", port=smtp_port)
    sink.start()
    env = _demo_env(work, shop, meta_url, smtp_port, in_flight)
    cluster = (CeleryCluster(work / "airflow", free_port(), env, broker_url=BENCH_BROKER, workers=workers,
                             concurrency=4 // workers)
               if workers else AirflowCluster(work / "airflow", free_port(), env))
    def conf(index: int) -> dict:
        return {"policy": "default_erasure_policy", "identity": {"email": _bench_email(index)}}

    try:
        cluster.start()
        cluster.trigger("warm-up", {**conf(-1), "request_id": "warm-up"})
        cluster.wait_for_run("warm-up", timeout=300)
        gap, duration, _ = _task_overhead(cluster, "warm-up")
        states, wall = _load(cluster, conf, in_flight)
    finally:
        cluster.stop()
        sink.stop()
        data.drop_database(f"{BENCH_DB}_airflow")
    return in_flight / wall * 3600, wall, gap, duration, states


def _demo_env(work: Path, shop: Path, meta_url: str, smtp_port: int, in_flight: int) -> dict[str, str]:
    """An Airflow for the demo shop under load: its metadata DB, store, key, shop and SMTP sink."""
    from cryptography.fernet import Fernet

    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1",
        "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": str(in_flight),
        "PRIVACY_REQUESTS_STORAGE": f"file://{work / 'storage'}",
        "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_CONN_DEMO_SHOP_DB": f"sqlite:///{shop}",
        "AIRFLOW_CONN_SMTP_DEFAULT": f"smtp://127.0.0.1:{smtp_port}?disable_tls=true&disable_ssl=true"
                                     "&from_email=privacy%40example.com",
    }


def _load(cluster, conf, in_flight: int) -> tuple[list[str], float]:
    """``in_flight`` requests triggered at once (one subject each); their end states and the wall time."""
    started = time.monotonic()
    for index in range(in_flight):
        cluster.trigger(f"load-{index}", {**conf(index), "request_id": f"load-{index}"})
    states = [cluster.wait_for_run(f"load-{index}", timeout=3600) for index in range(in_flight)]
    return states, time.monotonic() - started


def _bench_shop(shop: Path, in_flight: int) -> None:
    """The demo shop with one customer per request (and two spares for the warm-up and single runs):
    requests for one subject in flight at once are refused (in_flight.py)."""
    with sqlite3.connect(shop) as con:
        con.executescript((ROOT / "include/privacy/seed/demo_shop.sql").read_text())
        con.executemany("INSERT INTO customer VALUES (?, ?, 'Bench Subject', ?, 1, 'gold', '2024-01-01')",
                        [(1000 + i, _bench_email(i), f"+1555000{i + 2:04d}") for i in range(-2, in_flight)])


def _bench_email(index: int) -> str:
    return f"bench-{index + 2}@example.com"


def warehouses(records: int) -> list[Figure]:
    """One subject's records erased on each warehouse stand-in (bench/warehouses.py); no target: emulators."""
    from bench import warehouses as stand_ins

    load = os.getloadavg()[0]
    return [Figure(f"Snowflake stand-in (fakesnow): {what}, one subject with {erased:,} records",
                   f"{erased / seconds:,.0f} records/s ({seconds:.1f} s, {statements} statements, load {load:.1f})",
                   "an emulator on DuckDB, not Snowflake", "none (emulator)")
            for what, seconds, statements, erased in stand_ins.snowflake(records)]


# -- the table -----------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def print_table(figures: list[Figure]) -> None:
    header = ["measure", "result", "compared against", "target", "met"]
    rows = [header] + [f.row() for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few requests: a smoke run")
    parser.add_argument("--only", nargs="+", metavar="PART",
                        choices=["engine", "proof", "erasure", "memory", "parse", "scheduler", "batch", "pages",
                                 "executors", "drop", "warehouses"],
                        help="run only these parts")
    parser.add_argument("--subjects", type=int, metavar="N",
                        help="subjects in the batch part (default 10,000; 1,000 with --quick)")
    parser.add_argument("--rows", type=int, default=None, help="DROP list rows (default 1,000,000)")
    parser.add_argument("--probe-memory", nargs=2, metavar=("CONFIG", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe-parse", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_memory:
        probe_memory(*args.probe_memory, baseline=args.baseline)
        return 0
    if args.probe_parse:
        probe_parse(args.probe_parse)
        return 0

    sizes = data.Sizes.quick() if args.quick else data.Sizes.full()
    parts: list[tuple[str, Callable[[Path], list[Figure]]]] = [
        ("engine", lambda w: engine_efficiency(w, sizes, repeats=1 if args.quick else 3)),
        ("proof", lambda w: proof_split(w, 1_000 if args.quick else 10_000, repeats=3 if args.quick else 5)),
        ("erasure", lambda w: erasure_strategy(1_000 if args.quick else 10_000)),
        ("memory", lambda w: memory(w, 20_000 if args.quick else 1_000_000)),
        ("parse", lambda w: parse_times(w, [50, 200] if args.quick else [50, 200, 500])),
        ("scheduler", lambda w: scheduler(w, 3 if args.quick else 50)),
        ("batch", lambda w: batch(w, args.subjects or (1_000 if args.quick else 10_000))),
        ("pages", lambda w: pages(w, 10_000 if args.quick else 100_000)),
        ("executors", lambda w: executors(w, 10 if args.quick else 50)),
        ("drop", lambda w: drop(w, args.rows or (10_000 if args.quick else 1_000_000))),
        ("warehouses", lambda w: warehouses(1_000 if args.quick else 10_000)),
    ]
    steps = [(name, step) for name, step in parts if not args.only or name in args.only]
    figures: list[Figure] = []
    work = Path(tempfile.mkdtemp(prefix="prq-bench-"))
    try:
        for name, step in steps:
            started = time.monotonic()
            print(f"running: {name} ...", file=sys.stderr, flush=True)
            figures += step(work)
            print(f"  done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        data.drop_database(BENCH_DB)
    print(f"\nAirflow Privacy Requests benchmark, {datetime.now():%Y-%m-%d}, {os.cpu_count()} cores, "
          f"{math.ceil(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB")
    print_table(figures)
    return 0 if all(f.met is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
