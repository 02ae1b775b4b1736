"""The DROP part of the benchmark: an Email list of N hashes (half of them matching) against an N-row consumer
table in PostgreSQL, through the DROP engine in-process: drop_receive (the ZIP checked and stored),
drop_match (PostgreSQL hashes every row, one streamed statement; decisions; the consumers to erase written)
and drop_respond's files (response CSV, suppression list, report). The consumers' erasure itself is the batch
engine, measured by the ``batch`` part; here the batch is marked complete so the answer can be written.

Runs in a child process (``python -m bench.drop URL ROWS WORK``) so its peak RSS is its own; the download ZIP
is made by the parent.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DAY = "20261201"


def write_config(folder: Path) -> Path:
    (folder / "datasets").mkdir(parents=True, exist_ok=True)
    (folder / "policies").mkdir(exist_ok=True)
    (folder / "privacy.yml").write_text(yaml.safe_dump({
        "organization": "Bench Broker", "storage": f"file://{folder / 'storage'}",
        "datasets": {"broker": {"conn_id": "bench_drop"}},
        "drop": {"broker_id": "4821", "policy": "drop_erasure", "folder": f"file://{folder / 'inbox'}"}}))
    (folder / "datasets" / "broker.yml").write_text(yaml.safe_dump({"dataset": [{
        "fides_key": "broker", "collections": [{"name": "consumer", "fields": [
            {"name": "id", "data_categories": ["user.unique_id"], "fides_meta": {"primary_key": True}},
            {"name": "email", "data_categories": ["user.contact.email"], "fides_meta": {"identity": "email"}}]}]}]}))
    (folder / "policies" / "drop.yml").write_text(yaml.safe_dump({"policy": [{
        "key": "drop_erasure", "name": "DROP", "rules": [{"key": "erase", "action": "erasure",
                                                          "targets": ["user.contact"],
                                                          "masking_strategy": {"strategy": "null_rewrite"}}]}]}))
    return folder


def load(url: str, rows: int) -> float:
    from sqlalchemy import create_engine, text

    started = time.monotonic()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE consumer (id BIGINT PRIMARY KEY, email VARCHAR(200))"))
        conn.execute(text("INSERT INTO consumer SELECT i, 'Person.' || i || '@Example.com' "
                          "FROM generate_series(1, :n) AS i"), {"n": rows})
    engine.dispose()
    return time.monotonic() - started


def download(rows: int) -> bytes:
    """N work items: the even ones name a consumer of the table, the odd ones nobody."""
    import io
    import zipfile

    from include.privacy_requests.drop.hashing import hash_field

    lines = ["ID,Hash\r\n"]
    for i in range(1, rows + 1):
        address = f"person.{i}@example.com" if i % 2 == 0 else f"nobody.{i}@example.net"
        lines.append(f"W{i:011d},{hash_field('email', address)}\r\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{DAY}_4821_Email.csv", "".join(lines))
    return buffer.getvalue()


def child(url: str, work: Path) -> None:
    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine

    from include.privacy_requests.drop.respond import respond
    from include.privacy_requests.drop.run import DropRun, match, receive
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.store import layout

    config = load_config(write_config(work / "config"))
    zipped = (work / "download.zip").read_bytes()
    run = DropRun(config, "bench__1", work / "storage", Fernet.generate_key().decode())
    engine = create_engine(url)
    times = {}
    started = time.monotonic()
    receive(run, zipped, "2026-12-01T06:00:00+00:00")
    times["receive"] = time.monotonic() - started
    started = time.monotonic()
    matched = match(run, lambda _ds: engine)
    times["match"] = time.monotonic() - started
    report = run.root / layout.BATCHES / run.batch_id / layout.REPORT  # the batch part measures the erasure
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"status": "complete", "subjects": [], "rejected": []}))
    started = time.monotonic()
    answer = respond(run, None)
    times["respond"] = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "counts": matched["counts"], "subjects": matched["subjects"],
                      "files": answer["files"], "peak_mb": peak}))


def run_drop(url: str, rows: int, work: Path) -> dict:
    load_seconds = load(url, rows)
    work.mkdir(parents=True, exist_ok=True)
    (work / "download.zip").write_bytes(download(rows))  # made here: the child's peak RSS is the engine's
    out = subprocess.run([sys.executable, "-m", "bench.drop", url, str(rows), str(work)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_seconds"] = load_seconds
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    child(sys.argv[1], Path(sys.argv[3]))
