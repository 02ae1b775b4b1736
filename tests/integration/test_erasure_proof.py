"""Proof of erasure on a real PostgreSQL: a trigger that puts a masked value back is caught, the task fails
naming counts only, and its next try masks only what is left (a random value masked before stays, a hash is
never hashed twice)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text

from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.errors import DataSourceError
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.request.lifecycle import start_request
from include.privacy_requests.request.request import PrivacyRequest, open_request
from include.privacy_requests.steps.collection_steps import access_collection, erase_collection
from include.privacy_requests.store import layout
from tests.support.databases import airflow_uri, load_seed, postgresql_engine, rows

CUSTOMER = CollectionAddress("shop", "customer")
ROWS = [(1, "jane@example.com", "Jane", "+100", "1 Main St"),
        (2, "jane@example.com", "Jay", "+200", "2 Side St"),
        (3, "jane@example.com", "J.", "+300", "3 High St"),
        (4, "john@example.com", "John", "+400", "4 Low St")]


def field(name: str, categories: list[str], **meta) -> dict:
    return {"name": name, "data_categories": categories, "fides_meta": {"data_type": "string", **meta}}


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Engine]:
    yield from postgresql_engine(tmp_path)


STREETS_RANDOM = {"strategy": "random_string_rewrite", "configuration": {"length": 12}}


def started_request(tmp_path: Path, engine: Engine, streets: dict = STREETS_RANDOM,
                    rows: list[tuple] = ROWS) -> PrivacyRequest:
    """A started erasure request for jane@example.com on a one-table shop, its rows found by access."""
    folder = tmp_path / "privacy"
    (folder / "datasets").mkdir(parents=True)
    (folder / "policies").mkdir()
    (folder / "privacy.yml").write_text(yaml.safe_dump({
        "organization": "Test", "storage": f"file://{tmp_path / 'storage'}", "smtp_conn_id": "smtp_default",
        "datasets": {"shop": {"conn_id": "shop_db", "access": "write"}}}))
    (folder / "datasets" / "shop.yml").write_text(yaml.safe_dump({"dataset": [{"fides_key": "shop", "collections": [
        {"name": "customer", "fields": [
            field("id", ["system.operations"], primary_key=True, data_type="integer"),
            field("email", ["user.contact.email"], identity="email"),
            field("name", ["user.name"]),
            field("phone", ["user.contact.phone_number"]),
            field("street", ["user.contact.address"])]}]}]}))
    (folder / "policies" / "erase.yml").write_text(yaml.safe_dump({"policy": [{"key": "erase", "rules": [
        {"key": "names", "action": "erasure", "targets": ["user.name"],
         "masking_strategy": {"strategy": "null_rewrite"}},
        {"key": "phones", "action": "erasure", "targets": ["user.contact.phone_number"],
         "masking_strategy": {"strategy": "hash"}},
        {"key": "streets", "action": "erasure", "targets": ["user.contact.address"], "masking_strategy": streets}]}]}))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customer (id INTEGER PRIMARY KEY, email VARCHAR(255), name VARCHAR(255), "
                          "phone VARCHAR(255), street VARCHAR(255))"))
        conn.execute(text("INSERT INTO customer VALUES (:id, :email, :name, :phone, :street)"),
                     [dict(zip(("id", "email", "name", "phone", "street"), row, strict=True)) for row in rows])
    config = load_config(folder)
    request = open_request(config, {"policy": "erase", "identity": {"email": "jane@example.com"}, "request_id": "r-1"},
                           "run-1", tmp_path / "storage", Fernet.generate_key().decode())
    start_request(request, "run-1", "2026-11-28T00:00:00+00:00")
    access_collection(request, CUSTOMER, lambda _: SqlConnector(engine))
    return request


@pytest.fixture
def request_(tmp_path: Path, pg: Engine) -> PrivacyRequest:
    return started_request(tmp_path, pg)


def test_values_masked_already_verify_on_every_backend(tmp_path: Path, engine: Engine) -> None:
    """A row whose values already hold the masked value (NULL, the rewrite value) is matched, not changed:
    MariaDB reports such rows as matched too (SQLAlchemy's FOUND_ROWS), so the counts agree."""
    rows = [(1, "jane@example.com", None, None, "REDACTED"), (2, "jane@example.com", "Jay", "+200", "2 Side St")]
    request = started_request(tmp_path, engine, {"strategy": "string_rewrite",
                                                 "configuration": {"rewrite_value": "REDACTED"}}, rows)
    outcome = erase_collection(request, CUSTOMER, lambda _: SqlConnector(engine), try_number=1)
    assert (outcome.status, outcome.masked, outcome.detail["verified"]) == ("complete", 2, 2)
    assert table(engine)[1] == ("jane@example.com", None, None, "REDACTED")
    assert table(engine)[2][1:] == (None, table(engine)[2][2], "REDACTED") and table(engine)[2][2] != "+200"


def test_the_proof_is_one_counting_statement_per_chunk(tmp_path: Path, engine: Engine) -> None:
    """On every backend: one UPDATE for Jane's three rows, one statement that counts them back."""
    request = started_request(tmp_path, engine)
    connector = SqlConnector(engine)
    outcome = erase_collection(request, CUSTOMER, lambda _: connector, try_number=1)
    assert (outcome.masked, outcome.detail["verified"], connector.statements) == (3, 3, 2)


class PutsPhoneBack(SqlConnector):
    """Masks, then writes Jane's second phone back before the proof runs, as a trigger or a concurrent write
    would: every backend, no trigger language needed."""

    def mask(self, collection, rows, masks, checks=None):  # type: ignore[no-untyped-def]
        masked = super().mask(collection, rows, masks, checks)
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE customer SET phone = '+200' WHERE id = 2"))
        return masked


def test_a_value_put_back_is_counted_and_the_read_back_names_the_field_on_every_backend(
        tmp_path: Path, engine: Engine) -> None:
    request = started_request(tmp_path, engine)
    connector = PutsPhoneBack(engine)
    with pytest.raises(DataSourceError) as failure:
        erase_collection(request, CUSTOMER, lambda _: connector, try_number=1)
    message = str(failure.value)
    assert "1 of 3 masked row(s) do not hold their masked value (phone: 1 row(s))" in message
    assert "0 masked row(s) are gone" in message
    assert not any(value in message for row in ROWS for value in row[1:])  # counts, never values
    assert connector.statements == 3  # the UPDATE, the count, the read-back of the one chunk that failed
    assert request.store.get(layout.unverified(CUSTOMER)) == {"rows": 1, "missing": 0}

    again = SqlConnector(engine)  # the cause is gone; the task is cleared: it masks only what is left
    outcome = erase_collection(request, CUSTOMER, lambda _: again, try_number=2)
    assert (outcome.masked, outcome.detail["verified"], again.statements) == (3, 3, 3)
    assert table(engine)[2][2] != "+200" and not request.store.exists(layout.unverified(CUSTOMER))


def test_a_dialect_without_the_counting_statement_reads_every_row_back(tmp_path: Path, engine: Engine,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from include.privacy_requests.connectors import sql as sql_module
    from include.privacy_requests.connectors import verification

    monkeypatch.setattr(sql_module, "can_check", lambda dialect: False)
    monkeypatch.setattr(verification, "count", lambda *a: pytest.fail("no counting statement here"))
    request = started_request(tmp_path, engine)
    connector = SqlConnector(engine)
    outcome = erase_collection(request, CUSTOMER, lambda _: connector, try_number=1)
    assert (outcome.masked, outcome.detail["verified"], connector.statements) == (3, 3, 2)  # UPDATE, read-back


def table(engine: Engine) -> dict[int, tuple]:
    with engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(text("SELECT * FROM customer ORDER BY id"))}


def test_a_trigger_that_restores_a_value_fails_the_task_and_a_clear_masks_only_what_is_left(
        request_: PrivacyRequest, pg: Engine) -> None:
    with pg.begin() as conn:
        conn.execute(text("CREATE FUNCTION keep_phone() RETURNS trigger AS $$ BEGIN "
                          "IF OLD.id = 2 THEN NEW.phone := OLD.phone; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
        conn.execute(text("CREATE TRIGGER keep_phone BEFORE UPDATE ON customer FOR EACH ROW EXECUTE FUNCTION "
                          "keep_phone()"))

    with pytest.raises(DataSourceError) as failure:
        erase_collection(request_, CUSTOMER, lambda _: SqlConnector(pg), try_number=1)
    message = str(failure.value)
    assert "shop:customer" in message and "1 of 3 masked row(s) do not hold their masked value" in message
    assert "(phone: 1 row(s))" in message  # the count was not zero: the chunk was read back to name the field
    assert not any(value in message for row in ROWS for value in row[1:])  # counts, never values
    first = table(pg)
    assert first[2][2] == "+200" and first[1][2] != "+100"  # the trigger put Jane's second phone back
    assert not request_.store.exists(layout.erasure_ledger(CUSTOMER))
    assert not [e for e in request_.store.events() if e["event"] == "erasure_verified"]

    with pg.begin() as conn:  # the cause is fixed; the task is cleared
        conn.execute(text("DROP TRIGGER keep_phone ON customer"))
    connector = SqlConnector(pg)
    outcome = erase_collection(request_, CUSTOMER, lambda _: connector, try_number=2)

    assert outcome.masked == 3 and outcome.detail["verified"] == 3
    after = table(pg)
    salt = request_.store.get(layout.SECRETS)["salt"]
    for pk, (_, _, phone, _) in ((r[0], r[1:]) for r in ROWS[:3]):
        assert after[pk][1] is None  # name nulled
        assert after[pk][2] == hashlib.sha256((phone + salt).encode()).hexdigest()  # hashed once, not twice
    assert [after[pk][3] for pk in (1, 2, 3)] == [first[pk][3] for pk in (1, 2, 3)]  # random streets not redone
    assert after[4] == ROWS[3][1:]  # John untouched
    # Only row 2's phone was masked again: one UPDATE for what was left.
    assert connector.statements == 3  # read back before, one UPDATE, read back after
    verified = [e for e in request_.store.events() if e["event"] == "erasure_verified"]
    assert [(e["collection"], e["rows"], e["fields"]) for e in verified] == [("shop:customer", 3, 3)]
    assert request_.store.get(layout.erasure_ledger(CUSTOMER))["masked"] == 3
    assert not request_.store.exists(layout.unverified(CUSTOMER))


def test_a_row_deleted_after_masking_fails_verification(request_: PrivacyRequest, pg: Engine) -> None:
    with pg.begin() as conn:  # a concurrent writer deletes a masked row as soon as it is masked
        conn.execute(text("CREATE FUNCTION drop_masked() RETURNS trigger AS $$ BEGIN "
                          "DELETE FROM customer WHERE id = 3 AND name IS NULL; RETURN NULL; END $$ LANGUAGE plpgsql"))
        conn.execute(text("CREATE TRIGGER drop_masked AFTER UPDATE ON customer FOR EACH STATEMENT EXECUTE FUNCTION "
                          "drop_masked()"))
    with pytest.raises(DataSourceError, match="1 masked row\\(s\\) are gone"):
        erase_collection(request_, CUSTOMER, lambda _: SqlConnector(pg), try_number=1)


def test_the_dag_fails_without_retry_and_a_clear_completes_the_erasure(pg: Engine, run_request,
                                                                        config_folder, monkeypatch,
                                                                        smtp) -> None:
    """Through Airflow on a PostgreSQL shop: a trigger keeps Jane's phone; the erasure task fails at its first
    try although retries are configured; after the trigger is dropped, clearing it completes the request."""
    from tests.support.dag_runs import clear, resume, task_states

    load_seed(pg)
    with pg.begin() as conn:
        conn.execute(text("CREATE FUNCTION keep_phone() RETURNS trigger AS $$ BEGIN NEW.phone := OLD.phone; "
                          "RETURN NEW; END $$ LANGUAGE plpgsql"))
        conn.execute(text("CREATE TRIGGER keep_phone BEFORE UPDATE ON customer FOR EACH ROW EXECUTE FUNCTION "
                          "keep_phone()"))
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP_DB", airflow_uri(pg))
    config_folder.edit("privacy.yml", lambda d: d.update(retries={"count": 2, "delay_seconds": 0.1}))
    task = "erasure.demo_shop.customer"

    dag, dag_run, states = run_request("default_erasure_policy", {"email": "jane@example.com"})
    assert dag_run.state == "failed" and states[task] == ("failed", 1)
    assert rows(pg, "customer")[0][3] == "+15555550100"
    assert smtp.received == []  # the vendor email waits for every erasure

    with pg.begin() as conn:
        conn.execute(text("DROP TRIGGER keep_phone ON customer"))
    clear(dag, dag_run.run_id, [task])
    assert resume(dag, dag_run.run_id) == "success"
    assert task_states(dag, dag_run.run_id)[task] == ("success", 2)
    jane = rows(pg, "customer")[0]
    assert jane[2] is None and len(jane[3]) == 64
    assert rows(pg, "sms_subscription")[0][1] == jane[3]  # the same phone, hashed once in both tables
    assert len(smtp.received) == 1
