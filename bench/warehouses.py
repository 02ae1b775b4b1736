"""Records erased per second for one subject with N records, on each warehouse stand-in: the SQL connector's
statements (access untimed), masking per row (hash) and deleting, each with its proof of erasure.

    ./scripts/bench.sh --only warehouses [--quick]

The stand-ins are emulators (fakesnow on DuckDB for Snowflake): their speed says nothing about the service they
stand in for; the figure shows the statement count and that the work stays set-based at this size. The
stand-in is started the way the tests start it (tests/support/snowflake_server.py), on a free loopback port.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, text

SUBJECT = "bench-subject@example.com"


def _config(folder: Path, strategy: dict[str, Any]) -> Path:
    (folder / "datasets").mkdir(parents=True, exist_ok=True)
    (folder / "policies").mkdir(exist_ok=True)
    (folder / "privacy.yml").write_text(yaml.safe_dump({"organization": "Bench", "storage": f"file://{folder}/s",
                                                         "datasets": {"wh": {"conn_id": "warehouse"}}}))
    (folder / "datasets" / "wh.yml").write_text(yaml.safe_dump({"dataset": [{"fides_key": "wh", "collections": [
        {"name": "customer", "fields": [
            {"name": "id", "data_categories": ["system.operations"], "fides_meta": {"primary_key": True}},
            {"name": "email", "data_categories": ["user.contact.email"], "fides_meta": {"identity": "email"}},
            {"name": "name", "data_categories": ["user.name"]},
            {"name": "phone", "data_categories": ["user.contact.phone_number"]}]}]}]}))
    (folder / "policies" / "p.yml").write_text(yaml.safe_dump({"policy": [{"key": "p", "rules": [
        {"key": "r", "action": "erasure", "targets": ["user.name", "user.contact.phone_number"],
         "masking_strategy": strategy}]}]}))
    return folder


def _seed(engine: Engine, records: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE OR REPLACE TABLE customer (id INTEGER PRIMARY KEY, email VARCHAR(255), "
                          "name VARCHAR(64), phone VARCHAR(64))"))
        conn.execute(text("INSERT INTO customer SELECT seq4() + 1, :email, 'Bench Subject', '+1555' || (seq4() + 1) "
                          "FROM TABLE(GENERATOR(ROWCOUNT => :n))"), {"email": SUBJECT, "n": records})
        conn.execute(text("INSERT INTO customer VALUES (:id, 'other@example.com', 'Other', '+15550000000')"),
                     {"id": records + 1})


def _erase(engine: Engine, folder: Path, strategy: dict[str, Any]) -> tuple[float, int, int]:
    """(seconds, statements, records erased) of the erasure step alone."""
    from cryptography.fernet import Fernet

    from include.privacy_requests.connectors.sql import SqlConnector
    from include.privacy_requests.model.graph import CollectionAddress
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.request.lifecycle import start_request
    from include.privacy_requests.request.request import open_request
    from include.privacy_requests.steps.collection_steps import access_collection, erase_collection

    config = load_config(_config(folder, strategy))
    address = CollectionAddress("wh", "customer")
    request = open_request(config, {"policy": "p", "identity": {"email": SUBJECT}, "request_id": "bench"},
                           "bench", folder / "store", Fernet.generate_key().decode())
    start_request(request, "bench", "2026-01-01T00:00:00+00:00")
    access_collection(request, address, lambda _: SqlConnector(engine))
    connector = SqlConnector(engine)
    started = time.perf_counter()
    outcome = erase_collection(request, address, lambda _: connector, try_number=1)
    return time.perf_counter() - started, connector.statements, outcome.detail.get("deleted", outcome.masked)


def snowflake(records: int) -> list[tuple[str, float, int, int]]:
    """(what, seconds, statements, records) for masking per row and for deleting, on fakesnow."""
    from tests.support.snowflake_server import database_name, snowflake_server

    results = []
    with tempfile.TemporaryDirectory(prefix="prq-bench-sf-") as work, \
            snowflake_server(Path(work) / "fakesnow.log") as server:
        engine = server.engine(database_name())
        for what, strategy in (("hash (per-row masks, joined UPDATE)", {"strategy": "hash"}),
                               ("delete", {"strategy": "delete"})):
            _seed(engine, records)
            seconds, statements, erased = _erase(engine, Path(work) / what.split()[0], strategy)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT COUNT(*) FROM customer WHERE email = 'other@example.com' "
                                         "AND phone = '+15550000000'")).scalar_one() == 1
            results.append((what, seconds, statements, erased))
        engine.dispose()
    return results
