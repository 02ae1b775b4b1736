"""A real Airflow on CeleryExecutor on 127.0.0.1: the api-server, scheduler, dag-processor and triggerer of
``AirflowCluster`` plus Celery workers, each its own process with its own working folder, Airflow home (its
task logs) and TMPDIR, so that nothing passes between tasks on local disk, as on separate hosts.

Redis is the broker; the result backend is the metadata database. Every cluster takes its own Celery queue,
so two clusters sharing one Redis database never run each other's tasks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

import psutil

from scripts.local_airflow import AirflowCluster

WORKER_NAME_ENV = "PRIVACY_REQUESTS_WORKER_NAME"


def worker_hostname() -> str:
    """Airflow's ``hostname_callable`` for the workers: their name, so that the task instances of two workers
    on one machine say which one ran them (on separate hosts the host name does)."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def celery_settings(broker_url: str, metadata_url: str, queue: str, concurrency: int = 2) -> dict[str, str]:
    """The environment every component of a Celery deployment shares (docker-compose.yaml sets the same)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata_url}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
    }


def worker_command(name: str, queue: str) -> list[str]:
    """``airflow celery worker`` as each worker runs it; its log server stays off (logs stay on its host)."""
    return ["celery", "worker", "--celery-hostname", f"{name}@%h", "--queues", queue, "--skip-serve-logs"]


class CeleryCluster(AirflowCluster):
    """``AirflowCluster`` on CeleryExecutor with ``workers`` Celery workers (``worker-1`` ...)."""

    def __init__(self, home: Path, port: int, env: dict[str, str], *, broker_url: str, workers: int = 2,
                 concurrency: int = 2, password: str | None = None) -> None:
        self.queue = f"privacy-{secrets.token_hex(4)}"
        metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        super().__init__(home, port, {**celery_settings(broker_url, metadata, self.queue, concurrency), **env},
                         password)
        self.worker_names = [f"worker-{n}" for n in range(1, workers + 1)]
        self.workers: dict[str, subprocess.Popen] = {}
        self._worker_logs: dict[str, IO[bytes]] = {}

    def start(self, timeout: float = 600) -> None:
        super().start(timeout)
        for name in self.worker_names:
            self.start_worker(name)

    def worker_folder(self, name: str) -> Path:
        return self.home.parent / name

    def start_worker(self, name: str) -> None:
        folder = self.worker_folder(name)
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        env = {**self.env, "AIRFLOW_HOME": str(folder), "TMPDIR": str(folder / "tmp"), WORKER_NAME_ENV: name,
               "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.celery_airflow.worker_hostname"}
        log = open(folder / "worker.log", "ab")
        self._worker_logs[name] = log
        self.workers[name] = subprocess.Popen([sys.executable, "-m", "airflow", *worker_command(name, self.queue)],
                                              cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True)

    def stop_worker(self, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> None:
        """Stops a worker and every process under it: its pool, the tasks' supervisors and the task processes,
        which Airflow puts in process groups of their own. SIGKILL stands for a host that dies at once."""
        proc = self.workers.pop(name)
        try:
            tree = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        if sig == signal.SIGKILL:
            for child in [psutil.Process(proc.pid), *tree]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            psutil.wait_procs(tree, timeout=15)  # a loaded machine may take a moment to deliver the kills
        elif proc.poll() is None:
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for child in tree:  # whatever a warm shutdown left behind
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self._worker_logs.pop(name).close()

    def stop(self) -> None:
        for name in list(self.workers):
            self.stop_worker(name)
        super().stop()
