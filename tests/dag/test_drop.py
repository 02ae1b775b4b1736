"""The privacy_drop DAG in-process (dag.test) on SQLite and PostgreSQL: a download from the folder,
every status, a malformed row rejected alone, the consumers erased through the batch checkpoints, the service
provider instructed, the responses uploaded through a local DROP API that enforces the key; a clear in the
middle repeats no deletion and no upload; the next run (from the API) re-deletes a record collected again,
drops a removed identifier and amends."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text

from tests.support.dag_runs import clear, resume, task_states
from tests.support.databases import postgresql_engine
from tests.support.drop_server import HEAD, DropServer, email, first_download, make_zip
from tests.support.paths import ROOT

DROP_CONFIG = ROOT / "tests" / "drop_config"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    server = DropServer("drop-key")
    monkeypatch.setenv("AIRFLOW_CONN_DROP_API", json.dumps(
        {"conn_type": "http", "password": "drop-key", "extra": {"base_url": server.url}}))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def broker(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The broker's database (SQLite: Python hashes; PostgreSQL: the database hashes Email and Phone)."""
    if request.param == "sqlite":
        engines: Iterator[Engine] = iter([create_engine(f"sqlite:///{tmp_path / 'broker.db'}")])
    else:
        engines = postgresql_engine(tmp_path)
    engine = next(engines)
    with engine.begin() as conn:
        for statement in (DROP_CONFIG / "seed.sql").read_text().split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    url = engine.url.set(drivername=engine.url.get_backend_name())  # postgresql://, the provider's hook
    monkeypatch.setenv("AIRFLOW_CONN_DROP_BROKER_DB", url.render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    next(engines, None)


@pytest.fixture
def drop_dag(airflow_db: None, tmp_path: Path, storage: Path, broker: Engine, api: DropServer, smtp,
             monkeypatch: pytest.MonkeyPatch):
    from include.privacy_requests.airflow.drop_dag import build_drop_dag
    from include.privacy_requests.model.loading import load_config

    folder = tmp_path / "drop_config"
    shutil.copytree(DROP_CONFIG, folder)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = yaml.safe_load((folder / "privacy.yml").read_text())
    settings["drop"].update(folder=f"file://{inbox}", upload="api")
    (folder / "privacy.yml").write_text(yaml.safe_dump(settings))
    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(folder))  # dag.test serializes the dags folder's DAGs
    return build_drop_dag(load_config(folder)), inbox


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def rows(db: Engine, sql: str) -> list[tuple]:
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_privacy_drop_end_to_end(drop_dag, api: DropServer, broker: Engine, storage: Path, smtp) -> None:
    dag, inbox = drop_dag
    assert dag.schedule is not None and dag.dag_id == "privacy_drop"
    (inbox / "20261201_4821_DROP.zip").write_bytes(first_download())

    dag_run = dag.test(run_conf={})
    states = task_states(dag, dag_run.run_id)
    assert dag_run.state == "success", states
    assert rows(broker, "SELECT id, email, first_name, do_not_sell FROM consumer ORDER BY id") == [
        (1, None, None, 0), (2, "shared@family.example", "Bo", 1), (3, "shared@family.example", "Cy", 1),
        (4, None, None, 0)]
    assert rows(broker, "SELECT shipping_name FROM purchase ORDER BY id") == [(None,), (None,), ("Bo Lee",)]
    assert rows(broker, "SELECT email FROM loan ORDER BY id") == [("kept@loans.example",),
                                                                  ("Anna.Smith@Domain.com",)]
    uploaded = {name: text for path, files in api.uploads for name, text in files.items() if path == "/data/upload"}
    assert sorted(uploaded) == ["20261201_4821_Email.csv", "20261201_4821_MAID.csv", "20261201_4821_NDZ.csv",
                                "20261201_4821_Phone.csv"]
    assert uploaded["20261201_4821_Email.csv"].splitlines() == [
        "Id,Status", "EMAIL0000001,3", "EMAIL0000002,4", "EMAIL0000003,2", "EMAIL0000004,5", "EMAIL0000005,5"]
    assert len(smtp.received) == 1  # the service provider's instructions, one email for the batch
    run_folder = next((storage / "_drop").glob("run-*"))
    report = read(run_folder / "drop_report.json")
    assert report["counts"]["Email"] == {"2 exempted": 1, "3 deleted": 1, "4 opted out": 1, "5 not found": 2}
    assert report["rejected_rows"][0]["line"] == 7 and report["due"] == "2027-01-15"
    assert (run_folder / "drop_certificate.html").exists()
    assert read(storage / "EMAIL0000001" / "report.json")["status"] == "complete"

    # A clear in the middle: erasure and everything after it run again; nothing is deleted or sent twice.
    masked_before = read(storage / "batches" / report["batch_id"] / "report.json")["rows_masked"]
    cleared = clear(dag, dag_run.run_id, ["erasure.broker.consumer"])
    assert "drop_respond" in cleared
    assert resume(dag, dag_run.run_id) == "success"
    assert len(api.uploads) == 4 and len(smtp.received) == 1
    assert read(storage / "batches" / report["batch_id"] / "report.json")["rows_masked"] == masked_before

    # Next run, from the API: Anna's record collected again, a new customer matches an old "not found" work
    # item, and DROP says a consumer withdrew EMAIL0000004.
    with broker.begin() as conn:
        conn.execute(text("INSERT INTO consumer (id, email) VALUES (7, 'anna.smith@domain.com'), "
                          "(8, 'later@example.com')"))
    removed = f"ID,Hash,ListType\r\nEMAIL0000004,{email('nobody@nowhere.example')},Email\r\n"
    api.downloads.append((200, make_zip({"20261231_4821_Email.csv": HEAD,
                                         "20261231_4821_Removed.csv": removed})))
    second = dag.test(run_conf={"source": "api"})
    assert second.state == "success", task_states(dag, second.run_id)
    assert rows(broker, "SELECT email FROM consumer WHERE id IN (7, 8) ORDER BY id") == [(None,), (None,)]
    assert api.uploads[-1] == ("/data/amend", {"20261231_4821_Email_amend.csv": "Id,Status\r\nEMAIL0000005,3\r\n"})
    report2 = read(next(p for p in (storage / "_drop").glob("run-*") if p != run_folder) / "drop_report.json")
    assert report2["suppression_list_size"] == 7 and report2["removed_identifiers"] == 1
    assert api.unauthorized == 0


def test_a_wrong_file_name_fails_the_run_before_anything_changes(drop_dag, broker: Engine, api: DropServer) -> None:
    dag, inbox = drop_dag
    (inbox / "x.zip").write_bytes(make_zip({"20261201_4821_Emails.csv": HEAD}))
    before = rows(broker, "SELECT * FROM consumer ORDER BY id")
    dag_run = dag.test(run_conf={"source": "folder"})
    states = task_states(dag, dag_run.run_id)
    assert dag_run.state == "failed" and states["drop_receive"][0] == "failed"
    assert states["drop_match"][0] == "upstream_failed"
    assert rows(broker, "SELECT * FROM consumer ORDER BY id") == before and api.uploads == []
