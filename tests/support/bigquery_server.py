"""A BigQuery stand-in for tests: bqemulator (PyPI, Apache-2.0, test-only) serves BigQuery's REST API over DuckDB.
It lives in its own venv, ``.venv-bqemulator`` (scripts/setup.sh makes it from requirements-bqemulator.txt):
it refuses FastAPI 0.136.3, which Airflow 3.3.2 needs. Started on a free loopback port, in memory, stopped
afterwards. DuckDB's extensions come from their PyPI packages (``INSTALL '<file>'``), never from the network."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.ports import free_port, stop_process

EMULATOR_VENV = Path(os.environ.get("BQEMULATOR_VENV", ROOT / ".venv-bqemulator"))
PROJECT = "demo"
# DuckDB extensions bqemulator loads at start, from the duckdb-extension-* packages of its venv.
_INSTALL_EXTENSIONS = """
import duckdb, importlib.util, pathlib
for name in ("spatial", "avro", "json", "icu"):
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    duckdb.sql(f"INSTALL '{next(pathlib.Path(spec.origin).parent.glob('extensions/*/*.duckdb_extension'))}'")
"""


@contextmanager
def bigquery_server(log: Path, timeout: float = 120.0) -> Iterator[str]:
    """Yields the emulator's endpoint (``http://127.0.0.1:<port>``) once its REST API answers."""
    python, executable = EMULATOR_VENV / "bin" / "python", EMULATOR_VENV / "bin" / "bqemulator"
    if not executable.exists():
        raise RuntimeError(f"no bqemulator in {EMULATOR_VENV}: run scripts/setup.sh")
    subprocess.run([str(python), "-c", _INSTALL_EXTENSIONS], check=True, timeout=120)
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen([str(executable), "start", "--rest-host", "127.0.0.1", "--rest-port", str(port),
                                    "--grpc-host", "127.0.0.1", "--grpc-port", "0", "--ephemeral",
                                    "--project", PROJECT, "--log-level", "warning"],
                                   stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"bqemulator exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{endpoint}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # polling the condition above, not waiting a fixed time
        yield endpoint
    finally:
        stop_process(process)
