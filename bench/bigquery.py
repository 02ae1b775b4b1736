"""Benchmark line for BigQuery's stand-in: one subject who owns 10,000 records, erased by deleting them and by
masking them (a per-row hash), through the SQL connector and the request around it, on bqemulator (started on a
free loopback port by tests/support/bigquery_server.py, stopped afterwards). An emulator's speed (DuckDB behind a
REST API, on this machine) says little about BigQuery's."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def _config(folder: Path, strategy: dict[str, Any]) -> Any:
    from include.privacy_requests.model.loading import load_config

    (folder / "datasets").mkdir(parents=True)
    (folder / "policies").mkdir()
    (folder / "privacy.yml").write_text(yaml.safe_dump({
        "organization": "Bench", "storage": f"file://{folder / 'storage'}", "datasets": {"shop": {"conn_id": "bq"}}}))
    meta = lambda **m: m  # noqa: E731
    (folder / "datasets" / "shop.yml").write_text(yaml.safe_dump({"dataset": [{"fides_key": "shop", "collections": [
        {"name": "events", "fields": [
            {"name": "id", "data_categories": ["system.operations"], "fides_meta": meta(primary_key=True,
                                                                                        data_type="integer")},
            {"name": "email", "data_categories": ["user.contact.email"], "fides_meta": meta(identity="email",
                                                                                            data_type="string")},
            {"name": "page", "data_categories": ["user.behavior"], "fides_meta": meta(data_type="string")}]}]}]}))
    (folder / "policies" / "p.yml").write_text(yaml.safe_dump({"policy": [{"key": "p", "rules": [
        {"key": "e", "action": "erasure", "targets": ["user.behavior"], "masking_strategy": strategy}]}]}))
    return load_config(folder)


def erase_seconds(endpoint: str, records: int, strategy: dict[str, Any]) -> tuple[float, int, int]:
    """Seed ``records`` rows of one subject, run access, then time the erasure step: (seconds, rows, statements)."""
    from cryptography.fernet import Fernet
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from include.privacy_requests.airflow.bigquery import bigquery_engine
    from include.privacy_requests.connectors.sql import SqlConnector
    from include.privacy_requests.model.graph import CollectionAddress
    from include.privacy_requests.request.lifecycle import start_request
    from include.privacy_requests.request.request import open_request
    from include.privacy_requests.steps.collection_steps import access_collection, erase_collection

    client = bigquery.Client(project="demo", credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=endpoint))
    client.delete_dataset("shop", delete_contents=True, not_found_ok=True)
    client.create_dataset("shop")
    client.query("CREATE TABLE shop.events AS SELECT n AS id, 'jane@example.com' AS email, "
                 "CONCAT('/page/', CAST(n AS STRING)) AS page FROM UNNEST(GENERATE_ARRAY(1, "
                 f"{int(records)})) AS n").result()
    engine = bigquery_engine("bq", {"project": "demo", "api_endpoint": endpoint}, "shop")
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp) / "privacy", strategy)
        request = open_request(config, {"policy": "p", "identity": {"email": "jane@example.com"}}, "bench",
                               Path(tmp) / "storage", Fernet.generate_key().decode())
        start_request(request, "bench", "2026-12-04T00:00:00+00:00")
        address = CollectionAddress("shop", "events")
        access_collection(request, address, lambda _: SqlConnector(engine))
        connector = SqlConnector(engine)
        started = time.monotonic()
        outcome = erase_collection(request, address, lambda _: connector, try_number=1)
        seconds = time.monotonic() - started
    engine.dispose()
    return seconds, outcome.detail.get("deleted") or outcome.masked or 0, connector.statements


def main(records: int = 10_000) -> list[list[str]]:
    from tests.support.bigquery_server import bigquery_server

    lines = []
    with tempfile.TemporaryDirectory() as tmp, bigquery_server(Path(tmp) / "bqemulator.log") as endpoint:
        for name, strategy in [("delete", {"strategy": "delete"}),
                               ("hash (per-row MERGE)", {"strategy": "hash"})]:
            seconds, rows, statements = erase_seconds(endpoint, records, strategy)
            lines.append([f"bqemulator 1.4.0, {name}, one subject with {records:,} records",
                          f"{rows:,} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s, {statements} statements",
                          f"load average {os.getloadavg()[0]:.1f}"])
    return lines


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for line in main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000):
        print(" | ".join(line))
