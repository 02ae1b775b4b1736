"""A Snowflake stand-in for tests: fakesnow (PyPI ``fakesnow``, test-only) run as its own HTTP server
(``python -m fakesnow -s``) on a free loopback port. The Snowflake connector talks to it over HTTP as it would
to an account (login, queries, results), and fakesnow runs each statement on an in-memory DuckDB after
translating it from Snowflake's SQL. Every database a test names is made on first login; the data lives as
long as the server process, which the context manager stops."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine

from tests.support.ports import free_port, stop_process

HOST = "127.0.0.1"


@dataclass(frozen=True)
class SnowflakeServer:
    port: int

    def extra(self, database: str) -> dict[str, Any]:
        """A Snowflake connection's extras that reach this server (``protocol`` is read by the project's wing)."""
        return {"account": "fakesnow", "database": database, "host": HOST, "port": self.port, "protocol": "http",
                "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}}

    def airflow_connection(self, database: str, schema: str = "public") -> str:
        """The JSON of an Airflow connection of type ``snowflake`` (for an ``AIRFLOW_CONN_<ID>`` variable)."""
        return json.dumps({"conn_type": "snowflake", "login": "fake", "password": "snow", "schema": schema,
                           "extra": self.extra(database)})

    def engine(self, database: str, schema: str = "public") -> Engine:
        """An engine of its own for the test (seeding, reading back), the way the provider's hook makes one."""
        from snowflake.sqlalchemy import URL

        url = URL(account="fakesnow", user="fake", password="snow", host=HOST, port=self.port, database=database,
                  schema=schema)
        return create_engine(url, connect_args={"protocol": "http", "network_timeout": 30, "session_parameters": {
            "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}})


def database_name() -> str:
    return f"prq_test_{secrets.token_hex(6)}"


@contextmanager
def snowflake_server(log: Path, timeout: float = 60.0) -> Iterator[SnowflakeServer]:
    """Starts fakesnow's server and yields it once its port accepts connections (a condition, up to ``timeout``);
    stops it afterwards."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "fakesnow", "-s", "--host", HOST, "-p", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not _accepts(port):
            try:
                process.wait(timeout=0.2)  # returns only if the server exited
                raise RuntimeError(f"fakesnow exited with {process.returncode}: {log.read_text()[-2000:]}")
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"fakesnow did not listen on {HOST}:{port} in {timeout} s") from None
        yield SnowflakeServer(port)
    finally:
        stop_process(process)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False
