"""A MongoDB stand-in for tests: SecantusDB (PyPI ``secantusdb``, a test-only dependency) speaks the MongoDB wire
protocol over TCP. Started on a free loopback port with in-memory storage, stopped afterwards."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymongo

from tests.support.ports import stop_process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mongo_server(log: Path, timeout: float = 60.0) -> Iterator[str]:
    """Yields the server's URI once it answers a ping (waits on that condition, up to ``timeout``)."""
    executable = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or "secantusd-py"
    port = _free_port()
    with log.open("w") as out:
        process = subprocess.Popen([executable, "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                                    ":memory:", "--log-level", "WARNING"], stdout=out, stderr=subprocess.STDOUT)
    uri = f"mongodb://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"secantusd-py exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                with pymongo.MongoClient(uri, serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    raise
        yield uri
    finally:
        stop_process(process)
