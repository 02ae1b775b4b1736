"""The plugins' routes against hostile or unusual input, read through Airflow's own API app (its auth in front):
the deadline extension of a run refused for reusing a request id, a vendor's note with a NUL, a confirmation
token with junk in it, and pages that never load a run's conf."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.privacy_requests.outbound.vendor_confirmation import Claims, make_token, signing_key
from include.privacy_requests.store import layout
from include.privacy_requests.store.store import RequestStore
from tests.support.equivalence import run_batch_dag

VENDOR = "daycare_vendor"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    # One secret for the whole process: the API app keeps the first it signs with.
    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
    with TestClient(create_app()) as client:
        yield client


def _key() -> str:
    return os.environ["AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY"]


def test_extending_the_deadline_of_a_run_refused_for_a_reused_request_id_changes_nothing(
        run_request, config_folder, shop_db: Path, storage: Path, api, monkeypatch) -> None:
    """The id belongs to another, open request: the refused run's extension is 409, the other's clock unmoved."""
    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))
    owner = RequestStore(storage, "shared-id", _key())
    owner.put(layout.REQUEST, {"request_id": "shared-id", "policy": "default_access_policy", "run_id": "owner-run",
                               "received": datetime.now(UTC).isoformat()})
    _, refused, _ = run_request("default_access_policy", {"email": "john@example.com"}, "shared-id")
    assert refused.state == "failed"

    answer = api.put(f"/privacy-deadlines/requests/{refused.run_id}", json={"reason": "many systems", "months": 1})

    assert answer.status_code == 409, answer.text
    assert "owner-run" in answer.json()["detail"]
    assert owner.list(layout.EXTENSIONS) == [] and owner.events() == []
    assert api.put("/privacy-deadlines/requests/no-such-run", json={"reason": "x", "months": 1}).status_code == 404


@pytest.fixture
def vendor_link(config_folder, storage: Path, monkeypatch) -> tuple[str, RequestStore]:
    """A vendor that confirms, an erasure email sent to it for request r-1, and the genuine link's token."""
    config_folder.edit("privacy.yml", lambda d: d["datasets"][VENDOR]["email"].update(confirm=True))
    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))
    now = datetime.now(UTC)
    store = RequestStore(storage, "r-1", _key())
    store.put(layout.REQUEST, {"request_id": "r-1", "policy": "default_erasure_policy", "run_id": "run-1",
                               "received": now.isoformat()})
    store.put(layout.email_sent(VENDOR), {"time": now.isoformat(), "message_id": "<m1@example.com>",
                                          "subject": "Erasure", "recipients": ["privacy@vendor.example"]})
    return make_token(signing_key(_key()), Claims("r-1", VENDOR, 1, now + timedelta(days=30))), store


def test_a_note_with_a_control_character_is_refused_with_400_and_nothing_recorded(airflow_db, vendor_link,
                                                                                  api) -> None:
    token, store = vendor_link
    assert api.get("/privacy-vendor/confirm", params={"token": token}).status_code == 200
    for note in ("erased\x00", "\x1b[31mred", "x" * 1001, "line\u2028separator"):
        answer = api.post("/privacy-vendor/confirm", data={"token": token, "answer": "Erased", "note": note})
        assert answer.status_code == 400, (note[:10], answer.status_code)
        assert note not in answer.text
    assert store.get(layout.confirmation(VENDOR)) is None and store.events() == []


def test_a_token_with_junk_appended_or_inserted_is_refused_with_403(airflow_db, vendor_link, api) -> None:
    token, _ = vendor_link
    payload, signature = token.split(".")
    for bad in (token + "!", token + "%21", token + "==", payload + "$." + signature,
                payload + "." + signature[:10] + "*" + signature[10:], token + ".x"):
        assert api.get("/privacy-vendor/confirm", params={"token": bad}).status_code == 403, bad
        answer = api.post("/privacy-vendor/confirm", data={"token": bad, "answer": "Erased", "note": ""})
        assert answer.status_code == 403, bad


def test_the_pages_never_load_a_runs_conf(run_request, config_folder, shop_db: Path, storage: Path, api,
                                          monkeypatch) -> None:
    """Every statement the pages send reads only fields extracted from a conf, never the whole column: a
    batch's conf can hold 100,000 subjects (megabytes, decoded once per task row before)."""
    from airflow import settings
    from sqlalchemy import event

    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))
    _, single, _ = run_request("default_access_policy", {"email": "jane@example.com"}, "page-1")
    subjects = [{"request_id": f"page-b-{i}", "identity": {"email": f"s{i}@example.com"}} for i in range(50)]
    batch, _ = run_batch_dag(config_folder.path, "default_access_policy", subjects, "page-batch")
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(settings.engine, "before_cursor_execute", record)
    try:
        for page in ("/privacy/", "/privacy/api/requests", "/privacy/api/batches", f"/privacy/batches/{batch.run_id}",
                     f"/privacy/requests/{single.run_id}", f"/privacy/batches/{batch.run_id}/requests/page-b-1"):
            assert api.get(page).status_code == 200, page
            assert api.get(page).status_code == 200, page
    finally:
        event.remove(settings.engine, "before_cursor_execute", record)
    runs = [s for s in statements if re.search(r"\bdag_run\b", s)]
    assert runs, "the pages read the runs"
    whole = [s for s in runs if re.search(r"(?<!JSON_EXTRACT\()dag_run\.conf\b", s, re.IGNORECASE)]
    assert whole == []
    overview = api.get("/privacy/api/batches").json()
    # other modules' batches may share this metadata DB: this one is listed once, with its count
    assert [(b["batch_id"], b["subjects"]) for b in overview if b["batch_id"] == "page-batch"] == [("page-batch", 50)]
