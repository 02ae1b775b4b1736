"""A DROP run without Airflow, on SQLite: receive, match and decide (each status), erase through the batch
engine, answer; a second run re-deletes a record collected again, drops a removed identifier and amends."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine

from include.privacy_requests.batch.collections import access_batch_collection, erase_batch_collection
from include.privacy_requests.batch.outputs import finish_batch
from include.privacy_requests.batch.subjects import start_batch
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.connectors.vendor import VendorConnector
from include.privacy_requests.drop.files import DropFileError
from include.privacy_requests.drop.respond import respond
from include.privacy_requests.drop.run import DropRun, drop_batch, drop_subjects, has_subjects, match, receive
from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.store import layout
from tests.support.drop_server import HEAD, email, first_download, make_zip
from tests.support.paths import ROOT

CONFIG = ROOT / "tests" / "drop_config"
KEY = Fernet.generate_key().decode()
@pytest.fixture
def config() -> PrivacyConfig:
    return load_config(CONFIG)


@pytest.fixture
def broker(tmp_path: Path) -> Path:
    path = tmp_path / "broker.db"
    with sqlite3.connect(path) as con:
        con.executescript((CONFIG / "seed.sql").read_text())
    return path


def erase(run: DropRun, engine: Any) -> None:
    """The batch checkpoints, as privacy_drop runs them (access, then erasure, then finalize)."""
    if not has_subjects(run):
        return
    batch = drop_batch(run)
    start_batch(batch, run.run_id, "2026-12-01T00:00:00+00:00", drop_subjects(run))
    config = run.config

    def connector(dataset: str) -> Any:
        return SqlConnector(engine) if config.mapping(dataset).kind == "sql" else VendorConnector()

    for address in config.plan.order:
        access_batch_collection(batch, address, connector, 1)
    for address in config.plan.order:
        erase_batch_collection(batch, address, connector, 1)
    finish_batch(batch)


def response(run: DropRun, name: str) -> dict[str, int]:
    text = (run.store.base / layout.DROP_RESPONSES / name).read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Id", "Status"]
    return {r[0]: int(r[1]) for r in rows[1:]}


def test_a_run_then_a_second(config: PrivacyConfig, broker: Path, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{broker}")
    root = tmp_path / "storage"
    run = DropRun(config, "scheduled__2026-12-01T00:00:00+00:00", root, KEY)
    counts = receive(run, first_download(), "2026-12-01T06:00:00+00:00")
    assert counts == {"work_items": 8, "removed": 0, "rejected": 1, "due": "2027-01-15"}
    matched = match(run, lambda _ds: engine)
    assert matched["counts"]["Email"] == {"deleted": 1, "opted out": 1, "exempted": 1, "not found": 2}
    assert matched["subjects"] == 2  # Anna (Email and Phone lists: one consumer), Danielle (NDZ and MAID)
    with sqlite3.connect(broker) as con:
        assert con.execute("SELECT id FROM consumer WHERE do_not_sell = 1 ORDER BY id").fetchall() == [(2,), (3,)]
    assert match(run, lambda _ds: engine) == matched  # decided once: a clear repeats nothing
    with pytest.raises(RequestError, match="not complete"):
        respond(run, None)  # nothing answered "deleted" before the erasure ran
    erase(run, engine)
    with sqlite3.connect(broker) as con:
        assert con.execute("SELECT email, first_name FROM consumer WHERE id IN (1, 4)").fetchall() == \
            [(None, None), (None, None)]
        assert con.execute("SELECT email FROM loan WHERE id = 21").fetchone() == ("Anna.Smith@Domain.com",)
        assert con.execute("SELECT shipping_name FROM purchase WHERE id = 12").fetchone() == ("Bo Lee",)
    sent: list[tuple[dict[str, bytes], bool]] = []
    answer = respond(run, lambda files, amend: sent.append((files, amend)) or {"acceptedCount": 1})
    assert response(run, "20261201_4821_Email.csv") == {"EMAIL0000001": 3, "EMAIL0000002": 4, "EMAIL0000003": 2,
                                                        "EMAIL0000004": 5, "EMAIL0000005": 5}
    assert response(run, "20261201_4821_NDZ.csv") == {"NDZ000000001": 3}
    assert response(run, "20261201_4821_MAID.csv") == {"MAID00000001": 3}
    assert answer["uploaded"] == 4 and answer["suppression"] == 8
    respond(run, lambda files, amend: sent.append((files, amend)) or {})  # a clear: nothing sent again
    assert len(sent) == 4
    report = json.loads((run.store.base / layout.DROP_RUN_REPORT).read_text())
    assert report["counts"]["Email"]["2 exempted"] == 1 and report["due"] == "2027-01-15"
    assert report["rejected_rows"] == [{"file": "20261201_4821_Email.csv", "line": 7,
                                        "reason": "ID is not a work item id (12 letters or digits)"}]
    assert "GLBA" in report["exemptions"][0]
    assert "anna" not in json.dumps(report).lower()  # nothing in clear
    # Run 2: Anna's record is collected again, "later@example.com" appears; DROP removes EMAIL0000004.
    with sqlite3.connect(broker) as con:
        con.execute("INSERT INTO consumer (id, email) VALUES (7, 'anna.smith@domain.com'), (8, 'Later@Example.com')")
    run2 = DropRun(config, "scheduled__2026-12-31T00:00:00+00:00", root, KEY)
    removed = f"ID,Hash,ListType\r\nEMAIL0000004,{email('nobody@nowhere.example')},Email\r\n"
    receive(run2, make_zip({"20261231_4821_Email.csv": HEAD, "20261231_4821_Removed.csv": removed}),
            "2026-12-31T06:00:00+00:00")
    matched2 = match(run2, lambda _ds: engine)
    assert matched2["counts"]["Email"] == {"deleted": 2, "opted out": 1, "exempted": 1}
    erase(run2, engine)
    with sqlite3.connect(broker) as con:
        assert con.execute("SELECT email FROM consumer WHERE id IN (7, 8)").fetchall() == [(None,), (None,)]
    sent2: list[tuple[dict[str, bytes], bool]] = []
    answer2 = respond(run2, lambda files, amend: sent2.append((files, amend)) or {})
    assert answer2["suppression"] == 7  # EMAIL0000004 left the list
    assert [(list(f), amend) for f, amend in sent2] == [(["20261231_4821_Email_amend.csv"], True)]
    assert response(run2, "20261231_4821_Email_amend.csv") == {"EMAIL0000005": 3}
    assert (root / layout.BATCHES / run2.batch_id / layout.REPORT).exists()
    assert (root / "EMAIL0000001" / layout.REPORT).exists() and (root / "EMAIL0000001-20261231").exists()


def test_a_wrong_download_changes_nothing(config: PrivacyConfig, tmp_path: Path) -> None:
    run = DropRun(config, "manual__1", tmp_path, KEY)
    with pytest.raises(DropFileError, match="not ours"):
        receive(run, make_zip({"20261201_9999_Email.csv": HEAD}), "2026-12-01T06:00:00+00:00")
    assert not run.store.exists(layout.DROP_DOWNLOAD)
