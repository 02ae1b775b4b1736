"""The batch part of the benchmark: one ``privacy_request_batch`` run of N erasure subjects on the generated
population (bench/data.py) through a real Airflow (scheduler, LocalExecutor, PostgreSQL metadata DB), end to
end: trigger -> success. Reports subjects per hour, the time of each checkpoint, the SQL statements per
collection (from the batch report) and the peak RSS of the largest task process.

Peak RSS: a sampler walks the scheduler's process tree every 0.1 s and keeps each process's ``VmHWM`` (the
kernel's own high-water mark, so a peak between two samples is not missed, only the last 0.1 s of a process).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench import data

BATCH_DAG = "privacy_request_batch"
POLICY = "bench_erasure"
CHECKPOINTS = ("validate_request", "pre_webhooks", "access", "upload_access_package", "erasure",
               "erasure_email_send", "post_webhooks", "finalize")


@dataclass
class Batch:
    subjects: int
    seconds: float
    state: str
    checkpoints: list[tuple[str, int, float, float, str]]  # name, tasks, span s, slowest s, slowest task
    statements: dict[str, tuple[int | None, int | None]]  # collection -> (access, erasure) statements
    peak: tuple[float, str]  # MB, process title
    load_seconds: float
    rows_masked: int | None = None


class PeakSampler:
    """Samples the peak RSS (VmHWM) of every process below the given roots until stopped."""

    def __init__(self, roots: list[int], interval: float = 0.1) -> None:
        self.roots, self.interval = roots, interval
        self.peaks: dict[int, tuple[float, str, int]] = {}  # pid -> (MB, title, depth below its root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for root in self.roots:
                self._sample(root)
            time.sleep(self.interval)

    def _sample(self, root: int) -> None:
        try:
            stack = [(psutil.Process(root), 0)]
        except psutil.NoSuchProcess:
            return
        while stack:
            proc, depth = stack.pop()
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                hwm = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
                title = " ".join(proc.cmdline())[:120]
                stack.extend((child, depth + 1) for child in proc.children())
            except (psutil.Error, OSError, StopIteration):
                continue
            mb = hwm / 1024
            if mb > self.peaks.get(proc.pid, (0.0, "", 0))[0]:
                self.peaks[proc.pid] = (mb, title, depth)

    def largest_task(self) -> tuple[float, str]:
        """The largest process that ran a task: two levels below the scheduler (scheduler -> executor worker
        -> task process), or the largest worker when no task process was seen."""
        for depth in (2, 1):
            found = [(mb, title) for mb, title, d in self.peaks.values() if d >= depth]
            if found:
                return max(found)
        return 0.0, "-"


def allow_subjects_from(config_dir: Path, inbox: Path) -> None:
    """subjects_url is read only from an inbox privacy.yml names: the bench's work folder."""
    settings = yaml.safe_load((config_dir / "privacy.yml").read_text())
    settings.setdefault("batch", {})["subjects_from"] = [str(inbox)]
    (config_dir / "privacy.yml").write_text(yaml.safe_dump(settings, sort_keys=False))


def run_batch(work: Path, subjects: int, metadata_url: str, db_url: str, db_conn_uri: str) -> Batch:
    """Load the population, start Airflow, trigger one batch of ``subjects`` erasure subjects, measure."""
    from cryptography.fernet import Fernet

    from scripts.demo import free_port
    from scripts.local_airflow import AirflowCluster

    dbname = db_url.rsplit("/", 1)[1]
    started = time.monotonic()
    data.load_population(dbname, subjects)
    load_seconds = time.monotonic() - started
    config_dir = data.population_config(work / "config")
    allow_subjects_from(config_dir, work)
    subjects_file = work / "subjects.jsonl"
    subjects_file.write_text("".join(json.dumps(s) + "\n" for s in data.subjects(subjects)))
    storage = work / "storage"
    cluster = AirflowCluster(work / "airflow", free_port(), {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1",
        "PRIVACY_REQUESTS_CONFIG_DIR": str(config_dir),
        "PRIVACY_REQUESTS_STORAGE": f"file://{storage}",
        "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_CONN_BENCH": db_conn_uri,
    })
    batch_id = f"bench-{subjects}"
    try:
        cluster.start()
        _wait_for_dag(cluster, BATCH_DAG)
        scheduler = cluster.processes[1]  # api-server, scheduler, dag-processor, triggerer
        with PeakSampler([scheduler.pid]) as sampler:
            started = time.monotonic()
            cluster.post(f"/api/v2/dags/{BATCH_DAG}/dagRuns", {
                "logical_date": None, "dag_run_id": batch_id,
                "conf": {"batch_id": batch_id, "policy": POLICY, "subjects_url": f"file://{subjects_file}"}})
            state = _wait(cluster, batch_id, timeout=3 * 3600)
            seconds = time.monotonic() - started
        checkpoints = _checkpoints(cluster, batch_id)
    finally:
        cluster.stop()
    report_path = storage / "batches" / batch_id / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return Batch(subjects=subjects, seconds=seconds, state=state, checkpoints=checkpoints,
                 statements=_statements(report), peak=sampler.largest_task(), load_seconds=load_seconds,
                 rows_masked=report.get("rows_masked"))


def _wait_for_dag(cluster, dag_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cluster.get(f"/api/v2/dags/{dag_id}").get("dag_id"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the DAG {dag_id} did not appear in {timeout} s (see {cluster.home}/dag-processor.log)")
        time.sleep(1)
    cluster.session.patch(f"{cluster.base}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30)


def _wait(cluster, run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = cluster.get(f"/api/v2/dags/{BATCH_DAG}/dagRuns/{run_id}").get("state")
        if state in ("success", "failed"):
            return state
        time.sleep(0.5)
    raise RuntimeError(f"batch run {run_id} not finished after {timeout} s")


def _checkpoints(cluster, run_id: str) -> list[tuple[str, int, float, float, str]]:
    """Per checkpoint: its tasks, wall time from the first start to the last end, and its slowest task."""
    tis = cluster.get(f"/api/v2/dags/{BATCH_DAG}/dagRuns/{run_id}/taskInstances", limit=500)["task_instances"]

    def ts(value: str) -> float:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    result = []
    for name in CHECKPOINTS:
        ran = [ti for ti in tis if ti["task_id"].split(".")[0] == name and ti.get("start_date") and ti.get("end_date")]
        if not ran:
            continue
        span = max(ts(t["end_date"]) for t in ran) - min(ts(t["start_date"]) for t in ran)
        slowest = max(ran, key=lambda t: ts(t["end_date"]) - ts(t["start_date"]))
        result.append((name, len(ran), span, ts(slowest["end_date"]) - ts(slowest["start_date"]),
                       slowest["task_id"]))
    return result


def _statements(report: dict[str, Any]) -> dict[str, tuple[int | None, int | None]]:
    """collection -> (access, erasure) SQL statements, as the batch report counts them."""
    return {c["collection"]: ((c.get("access") or {}).get("statements"), (c.get("erasure") or {}).get("statements"))
            for c in report.get("collections", [])}


def median_statements(statements: dict[str, tuple[int | None, int | None]]) -> tuple[str, str]:
    """(access, erasure) statements per collection: median and maximum over the collections."""
    def summary(values: list[int]) -> str:
        return f"median {statistics.median(values):g}, max {max(values)}" if values else "not reported"
    access = [a for a, _ in statements.values() if a is not None]
    erasure = [e for _, e in statements.values() if e is not None]
    return summary(access), summary(erasure)
