"""A real Airflow on 127.0.0.1: api-server, scheduler, dag-processor and triggerer on a SQLite metadata DB.

Run directly (``./scripts/airflow.sh``) it serves the demo configuration so a person can use the UI; the
end-to-end tests use the same class on a throw-away home and drive it through the REST API.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import requests

ROOT = Path(__file__).resolve().parents[1]


def component_commands(port: int) -> dict[str, list[str]]:
    """The ``airflow`` sub-commands of the four components (docker-compose.yaml runs the same ones)."""
    return {
        "api-server": ["api-server", "-H", "127.0.0.1", "-p", str(port)],
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer", "--skip-serve-logs"],
    }


class AirflowCluster:
    """Starts the four components as child processes (own process groups) and stops every one of them."""

    def __init__(self, home: Path, port: int, env: dict[str, str], password: str | None = None) -> None:
        from include.privacy_requests.airflow.constants import RUN_ID_PATTERN  # the project root is importable

        self.home = home
        self.password = password or secrets.token_urlsafe(12)
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "PYTHONPATH": str(ROOT),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            # Airflow's default, less the run id "." its execution API cannot serve (see the Dockerfile).
            "AIRFLOW__SCHEDULER__ALLOWED_RUN_ID_PATTERN": RUN_ID_PATTERN,
            # A task's calls to the execution API: 5 s (the default) was not enough while this 2-core machine
            # ran other tiers beside the cluster (the task failed before it started: httpx ReadTimeout).
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            **env,  # the caller's settings win (metadata DB, idle sleep ...)
        }
        # True when the metadata DB already has Airflow's schema (the tests copy a migrated template): start()
        # then skips ``airflow db migrate``, an Airflow start-up of its own (16 s on a loaded 2-core machine).
        self.migrated = False
        self.processes: list[subprocess.Popen] = []
        self.logs: list[IO[bytes]] = []
        self.session = requests.Session()

    def start(self, timeout: float = 600) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({"admin": self.password}))
        airflow = [sys.executable, "-m", "airflow"]
        if not self.migrated:
            subprocess.run([*airflow, "db", "migrate"], env=self.env, check=True, capture_output=True)
        for name, args in component_commands(self.port).items():
            log = open(self.home / f"{name}.log", "wb")
            self.logs.append(log)
            self.processes.append(subprocess.Popen([*airflow, *args], env=self.env, stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                token = requests.post(f"{self.base}/auth/token", json={"username": "admin", "password": self.password},
                                      timeout=5)
                if token.status_code == 201:
                    self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
                    if self.get("/api/v2/dags/privacy_request").get("dag_id") == "privacy_request":
                        self.unpause()
                        return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(1)
        raise RuntimeError(f"Airflow did not come up in {timeout} s; logs in {self.home}")

    def unpause(self) -> None:
        """DAGs first seen by dag.test (the demo) start paused; a paused DAG's runs stay queued."""
        for dag_id in ("privacy_request", "privacy_vendor_test_email"):
            self.session.patch(f"{self.base}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.logs:
            log.close()

    def get(self, path: str, **params: Any) -> dict:
        response = self.session.get(f"{self.base}{path}", params=params, timeout=30)
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> dict:
        response = self.session.post(f"{self.base}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def patch(self, path: str, body: dict) -> dict:
        response = self.session.patch(f"{self.base}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def trigger(self, run_id: str, conf: dict) -> None:
        self.post("/api/v2/dags/privacy_request/dagRuns", {"logical_date": None, "dag_run_id": run_id, "conf": conf})

    def wait_for_run(self, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.polled(lambda: self.get(f"/api/v2/dags/privacy_request/dagRuns/{run_id}").get("state"))
            if state in ("success", "failed"):
                return state
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} not finished after {timeout} s")

    @staticmethod
    def polled(ask: Any) -> Any:
        """One look while waiting for a condition: an API server too busy to answer within the request's
        timeout (a loaded machine) is a look without an answer, not a failure; the wait's deadline decides."""
        try:
            return ask()
        except (requests.Timeout, requests.ConnectionError):
            return None

    def wait_for_task(self, run_id: str, task_id: str, state: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.polled(lambda: self.task_states(run_id).get(task_id, (None,))[0]) == state:
                return
            time.sleep(0.5)
        raise AssertionError(f"{task_id} of run {run_id} not {state} after {timeout} s: {self.task_states(run_id)}")

    def wait_until_parked(self, run_id: str, task_id: str, timeout: float = 600) -> None:
        """Until the task awaits input and the scheduler has seen its worker exit.

        Airflow 3.3 fails a task answered before the scheduler processes the parked worker's exit (seconds
        under load): the exit then looks like a task killed externally. People never answer that fast.
        """
        self.wait_for_task(run_id, task_id, "awaiting_input", timeout)
        try_number = self.task_states(run_id)[task_id][1]
        exited = (f"Received executor event with state success for task instance TaskInstanceKey("
                  f"dag_id='privacy_request', task_id='{task_id}', run_id='{run_id}', try_number={try_number},")
        deadline = time.monotonic() + timeout
        while exited not in (self.home / "scheduler.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise AssertionError(f"the scheduler did not see {task_id} of {run_id} park in {timeout} s")
            time.sleep(0.5)
        time.sleep(1)

    def task_states(self, run_id: str) -> dict[str, tuple[str, int]]:
        body = self.get(f"/api/v2/dags/privacy_request/dagRuns/{run_id}/taskInstances", limit=500)
        return {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in body["task_instances"]}

    def clear(self, run_id: str, task_ids: list[str], only_failed: bool = True) -> list[str]:
        body = self.post("/api/v2/dags/privacy_request/clearTaskInstances", {
            "dag_run_id": run_id, "task_ids": task_ids, "only_failed": only_failed, "include_downstream": True,
            "dry_run": False})
        return sorted(ti["task_id"] for ti in body["task_instances"])


def main() -> int:
    """Serve the demo configuration on http://127.0.0.1:PORT until Ctrl-C; vendor emails go to .demo/mailbox."""
    import argparse

    from aiosmtpd.controller import Controller

    sys.path.insert(0, str(ROOT))
    from scripts.demo import DEMO, free_port, prepare_environment
    from scripts.smtp_sink import EmlFolderHandler

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    smtp_port = free_port()
    prepare_environment(smtp_port, fresh_shop=False)
    sink = Controller(EmlFolderHandler(DEMO / "mailbox"), hostname="127.0.0.1", port=smtp_port)
    sink.start()
    password_file = DEMO / "admin-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(12))
    # Vendor confirmation links point at [api] base_url: this Airflow unless the environment says otherwise.
    public = {"AIRFLOW__API__BASE_URL": os.environ.get("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{args.port}")}
    cluster = AirflowCluster(Path(os.environ["AIRFLOW_HOME"]), args.port, public, password_file.read_text().strip())
    try:
        print(f"Starting Airflow on {cluster.base} (logs in {cluster.home}) ...", flush=True)
        cluster.start()
        print(f"Airflow is up: {cluster.base}  user: admin  password: {cluster.password}\n"
              f"Vendor emails land in {DEMO / 'mailbox'}. Ctrl-C stops everything.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
