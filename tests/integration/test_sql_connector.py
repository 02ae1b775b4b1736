"""SqlConnector against real databases: SQLite, PostgreSQL and MariaDB (see conftest.engine).

Each test creates its own tables with plain SQL in a fresh database.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from contextlib import closing
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from include.privacy_requests.connectors import sql as sql_module
from include.privacy_requests.connectors import verification
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.errors import DataSourceError, TransientError
from include.privacy_requests.model.graph import Collection, CollectionAddress, FieldSpec
from include.privacy_requests.model.masking import FieldMask, Masker, new_request_secrets

CUSTOMERS = [
    {"id": 1, "email": "a@x.org", "name": "Ann"},
    {"id": 2, "email": "b@x.org", "name": "Bob"},
    {"id": 3, "email": "c@x.org", "name": "Cid"},
]


# --- helpers -------------------------------------------------------------------------------------


def run_sql(engine: Engine, statement: str, params: list[dict[str, Any]] | dict[str, Any] | None = None) -> None:
    """Run one statement (executemany when params is a list) in its own transaction."""
    with engine.begin() as conn:
        conn.execute(text(statement), params or {})


def fetch(engine: Engine, query: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(query))]


def create_customers(engine: Engine, rows: list[dict[str, Any]] = CUSTOMERS) -> None:
    run_sql(engine, "CREATE TABLE customer (id INTEGER PRIMARY KEY, email VARCHAR(255), name VARCHAR(255))")
    run_sql(engine, "INSERT INTO customer (id, email, name) VALUES (:id, :email, :name)", rows)


def customer_collection(name: str = "customer") -> Collection:
    return Collection(
        CollectionAddress("ds", name),
        [
            FieldSpec(path="id", primary_key=True, data_type="integer"),
            FieldSpec(path="email", data_type="string"),
            FieldSpec(path="name", data_type="string"),
        ],
    )


def retrieve(connector: SqlConnector, collection: Collection, inputs: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return list(connector.select_rows(collection, inputs))


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["id"])


def field_mask(strategy: str, configuration: dict[str, Any] | None = None, *, length: int | None = None,
               request_secrets: dict[str, str] | None = None) -> FieldMask:
    return FieldMask(Masker(strategy, configuration or {}, request_secrets or new_request_secrets()), length)


def sha256_salted(value: str, salt: str) -> str:
    return hashlib.sha256((value + salt).encode()).hexdigest()


# --- retrieve ------------------------------------------------------------------------------------


def test_retrieve_returns_the_matching_row_with_all_declared_columns(engine: Engine) -> None:
    create_customers(engine)
    connector = SqlConnector(engine)

    rows = retrieve(connector, customer_collection(), {"email": ["a@x.org"]})

    assert rows == [{"id": 1, "email": "a@x.org", "name": "Ann"}]
    assert connector.statements == 1


def test_retrieve_ors_the_input_fields(engine: Engine) -> None:
    create_customers(engine)
    connector = SqlConnector(engine)

    rows = retrieve(connector, customer_collection(), {"email": ["a@x.org"], "id": [2]})

    assert by_id(rows) == CUSTOMERS[:2]
    assert connector.statements == 1


def test_retrieve_sends_duplicate_values_in_one_statement(engine: Engine) -> None:
    create_customers(engine)
    connector = SqlConnector(engine)

    rows = retrieve(connector, customer_collection(), {"email": ["a@x.org", "a@x.org", "a@x.org"], "id": [1, 1]})

    assert rows == [CUSTOMERS[0]]
    assert connector.statements == 1


def test_retrieve_slices_values_beyond_the_limit_and_returns_each_row_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6 values, limit 3: email in 2 slices, id in 1; row 1 is matched by an email slice and the id slice."""
    monkeypatch.setattr(sql_module, "QUERY_VALUES_LIMIT", 3)
    create_customers(engine)
    connector = SqlConnector(engine)

    rows = retrieve(
        connector,
        customer_collection(),
        {"email": ["a@x.org", "nobody@x.org", "none@x.org", "b@x.org"], "id": [1, 99]},
    )

    assert by_id(rows) == CUSTOMERS[:2]
    assert connector.statements == 3


def test_retrieve_sliced_single_field_returns_each_row_once(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct values the column's collation finds equal (MariaDB is case-insensitive) fall in two slices.

    The row they both match must still be returned once, as retrieve() promises for sliced queries.
    """
    monkeypatch.setattr(sql_module, "QUERY_VALUES_LIMIT", 3)
    create_customers(engine)
    connector = SqlConnector(engine)

    rows = retrieve(
        connector, customer_collection(), {"email": ["a@x.org", "nobody@x.org", "none@x.org", "A@X.ORG"]}
    )

    assert rows == [CUSTOMERS[0]]
    assert connector.statements == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "x' OR '1'='1"), ("name", "Ann'; DROP TABLE customer; --"), ("email", 'a@x.org" OR "1"="1'),
     ("email", "' UNION SELECT id, email, name FROM customer --"),
     ("email", "a@x.org'; UPDATE customer SET name=NULL; --"), ("name", "\\'; DELETE FROM customer; --"),
     ("email", "%' OR email LIKE '%"), ("name", "x'||(SELECT email FROM customer LIMIT 1)||'"),
     ("email", "a@x.org`; DROP TABLE customer; #")],
)
def test_retrieve_injection_looking_values_are_parameters(engine: Engine, field: str, value: str) -> None:
    create_customers(engine)
    connector = SqlConnector(engine)

    assert retrieve(connector, customer_collection(), {field: [value]}) == []
    assert fetch(engine, "SELECT id, email, name FROM customer ORDER BY id") == [
        tuple(r.values()) for r in CUSTOMERS
    ]


# --- mask ----------------------------------------------------------------------------------------


def test_mask_null_rewrite_is_set_based_and_leaves_other_rows_alone(engine: Engine) -> None:
    total, found = 1_500, 1_200
    create_customers(engine, [{"id": i, "email": f"u{i}@x.org", "name": f"name{i}"} for i in range(1, total + 1)])
    collection = customer_collection()
    rows = retrieve(SqlConnector(engine), collection, {"id": list(range(1, found + 1))})
    assert len(rows) == found

    connector = SqlConnector(engine)
    masked = connector.mask(collection, iter(rows), {"name": field_mask("null_rewrite")})

    assert masked == found
    assert connector.statements == math.ceil(found / sql_module.UPDATE_BATCH)
    after = fetch(engine, "SELECT id, email, name FROM customer ORDER BY id")
    assert after[:found] == [(i, f"u{i}@x.org", None) for i in range(1, found + 1)]
    assert after[found:] == [(i, f"u{i}@x.org", f"name{i}") for i in range(found + 1, total + 1)]


def test_mask_hash_writes_each_rows_own_salted_digest(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 2 so the per-row CASE is built more than once; row 5 is not in the found set."""
    monkeypatch.setattr(sql_module, "UPDATE_BATCH", 2)
    names = ["Ann", "Bob", "Cid", "Dee", "Eve"]
    people = [{"id": i, "email": f"u{i}@x.org", "name": n} for i, n in enumerate(names, 1)]
    create_customers(engine, people)
    collection = customer_collection()
    rows = retrieve(SqlConnector(engine), collection, {"id": [1, 2, 3, 4]})
    request_secrets = new_request_secrets()

    connector = SqlConnector(engine)
    masked = connector.mask(collection, iter(rows), {"name": field_mask("hash", request_secrets=request_secrets)})

    assert masked == 4
    assert connector.statements == 2
    salt = request_secrets["salt"]
    expected = [(p["id"], sha256_salted(p["name"], salt)) for p in people[:4]] + [(5, "Eve")]
    assert fetch(engine, "SELECT id, name FROM customer ORDER BY id") == expected


def test_mask_hash_values_differing_only_in_case_each_get_their_own_digest(engine: Engine) -> None:
    """'Ann' and 'ANN' are different originals: each row is masked from its own value."""
    people = [{"id": 1, "email": "a@x.org", "name": "Ann"}, {"id": 2, "email": "b@x.org", "name": "ANN"}]
    create_customers(engine, people)
    collection = customer_collection()
    rows = retrieve(SqlConnector(engine), collection, {"id": [1, 2]})
    request_secrets = new_request_secrets()

    SqlConnector(engine).mask(collection, iter(rows), {"name": field_mask("hash", request_secrets=request_secrets)})

    salt = request_secrets["salt"]
    assert fetch(engine, "SELECT id, name FROM customer ORDER BY id") == [
        (1, sha256_salted("Ann", salt)),
        (2, sha256_salted("ANN", salt)),
    ]


def test_mask_string_rewrite_is_truncated_to_the_column_length(engine: Engine) -> None:
    run_sql(engine, "CREATE TABLE profile (id INTEGER PRIMARY KEY, nickname VARCHAR(10))")
    run_sql(engine, "INSERT INTO profile (id, nickname) VALUES (:id, :nickname)",
            [{"id": 1, "nickname": "annie"}, {"id": 2, "nickname": "bobby"}])
    collection = Collection(
        CollectionAddress("ds", "profile"),
        [FieldSpec(path="id", primary_key=True, data_type="integer"),
         FieldSpec(path="nickname", data_type="string", length=10)],
    )
    rows = retrieve(SqlConnector(engine), collection, {"id": [1]})
    mask = field_mask("string_rewrite", {"rewrite_value": "a-replacement-far-longer-than-ten"}, length=10)

    masked = SqlConnector(engine).mask(collection, iter(rows), {"nickname": mask})

    assert masked == 1
    assert fetch(engine, "SELECT id, nickname FROM profile ORDER BY id") == [(1, "a-replacem"), (2, "bobby")]


def test_mask_composite_primary_key_masks_only_the_listed_pairs(engine: Engine) -> None:
    run_sql(engine, "CREATE TABLE order_line (order_id INTEGER NOT NULL, line INTEGER NOT NULL, "
                    "note VARCHAR(255), PRIMARY KEY (order_id, line))")
    run_sql(engine, "INSERT INTO order_line (order_id, line, note) VALUES (:o, :l, :n)",
            [{"o": o, "l": ln, "n": f"note {o}.{ln}"} for o in (1, 2) for ln in (1, 2)])
    collection = Collection(
        CollectionAddress("ds", "order_line"),
        [FieldSpec(path="order_id", primary_key=True, data_type="integer"),
         FieldSpec(path="line", primary_key=True, data_type="integer"),
         FieldSpec(path="note", data_type="string")],
    )
    found = [r for r in retrieve(SqlConnector(engine), collection, {"order_id": [1, 2]})
             if (r["order_id"], r["line"]) in {(1, 1), (2, 2)}]
    assert len(found) == 2

    masked = SqlConnector(engine).mask(collection, iter(found), {"note": field_mask("null_rewrite")})

    assert masked == 2
    assert fetch(engine, "SELECT order_id, line, note FROM order_line ORDER BY order_id, line") == [
        (1, 1, None), (1, 2, "note 1.2"), (2, 1, "note 2.1"), (2, 2, None),
    ]


def test_mask_per_row_overwrites_a_value_changed_since_access(engine: Engine) -> None:
    """The row is the subject's (by key): a value changed since access is masked too, from the found one."""
    create_customers(engine)
    collection = customer_collection()
    rows = retrieve(SqlConnector(engine), collection, {"id": [1, 2]})
    run_sql(engine, "UPDATE customer SET name = 'Robert' WHERE id = 2")
    request_secrets = new_request_secrets()

    SqlConnector(engine).mask(collection, iter(rows), {"name": field_mask("hash", request_secrets=request_secrets)})

    assert fetch(engine, "SELECT id, name FROM customer ORDER BY id") == [
        (1, sha256_salted("Ann", request_secrets["salt"])),
        (2, sha256_salted("Bob", request_secrets["salt"])),
        (3, "Cid"),
    ]


def _order_lines(engine: Engine) -> Collection:
    """order_line keyed by (order_id, line): four rows, notes 'note <order>.<line>'."""
    run_sql(engine, "CREATE TABLE order_line (order_id INTEGER NOT NULL, line INTEGER NOT NULL, "
                    "note VARCHAR(255), PRIMARY KEY (order_id, line))")
    run_sql(engine, "INSERT INTO order_line (order_id, line, note) VALUES (:o, :l, :n)",
            [{"o": o, "l": ln, "n": f"note {o}.{ln}"} for o in (1, 2) for ln in (1, 2)])
    return Collection(
        CollectionAddress("ds", "order_line"),
        [FieldSpec(path="order_id", primary_key=True, data_type="integer"),
         FieldSpec(path="line", primary_key=True, data_type="integer"),
         FieldSpec(path="note", data_type="string")],
    )


@pytest.mark.parametrize("strategy", ["hash", "hmac", "aes_encrypt", "random_string_rewrite"])
def test_mask_per_row_composite_key_writes_each_pair_its_own_value(engine: Engine, strategy: str) -> None:
    """(1, 2) and (2, 1): each key column value also belongs to an unlisted pair, which must not change."""
    collection = _order_lines(engine)
    found = [r for r in retrieve(SqlConnector(engine), collection, {"order_id": [1, 2]})
             if (r["order_id"], r["line"]) in {(1, 2), (2, 1)}]
    mask = field_mask(strategy)

    connector = SqlConnector(engine)
    masked = connector.mask(collection, iter(found), {"note": mask})

    assert (masked, connector.statements) == (2, 1)
    after = dict(((o, ln), note) for o, ln, note in fetch(engine, "SELECT order_id, line, note FROM order_line"))
    assert after[(1, 1)] == "note 1.1" and after[(2, 2)] == "note 2.2"
    assert after[(1, 2)] not in ("note 1.2", None) and after[(2, 1)] not in ("note 2.1", None)
    assert after[(1, 2)] != after[(2, 1)]
    if strategy != "random_string_rewrite":  # the others are functions of the value found
        assert [after[(1, 2)], after[(2, 1)]] == [mask.apply("note 1.2"), mask.apply("note 2.1")]


def test_mask_hash_twice_gives_the_same_result_as_once(engine: Engine) -> None:
    """A re-run after a crash masks from the rows found during access again: the digests do not compound."""
    create_customers(engine)
    collection = customer_collection()
    rows = retrieve(SqlConnector(engine), collection, {"id": [1, 2]})
    masks = {"name": field_mask("hash"), "email": field_mask("hmac")}

    SqlConnector(engine).mask(collection, iter(rows), masks)
    once = fetch(engine, "SELECT id, email, name FROM customer ORDER BY id")
    SqlConnector(engine).mask(collection, iter(rows), masks)

    assert fetch(engine, "SELECT id, email, name FROM customer ORDER BY id") == once
    assert once[2] == (3, "c@x.org", "Cid")
    assert once[0] == (1, masks["email"].apply("a@x.org"), masks["name"].apply("Ann"))


QUOTED_AND_UNICODE = ["O'Brien", 'say "hi"', "back\\slash", "Zoë Ł. 李", "🙂 x'); DROP TABLE customer; --",
                      "%(k0_0)s :m0_1 ?"]


def test_mask_per_row_values_with_quotes_and_unicode_are_parameters(engine: Engine) -> None:
    people = [{"id": i, "email": f"u{i}@x.org", "name": n} for i, n in enumerate(QUOTED_AND_UNICODE, 1)]
    create_customers(engine, people)
    collection = customer_collection()
    rows = retrieve(SqlConnector(engine), collection, {"id": [p["id"] for p in people]})
    request_secrets = new_request_secrets()

    masked = SqlConnector(engine).mask(
        collection, iter(rows), {"name": field_mask("hash", request_secrets=request_secrets)})

    assert masked == len(people)
    assert fetch(engine, "SELECT id, name FROM customer ORDER BY id") == [
        (p["id"], sha256_salted(p["name"], request_secrets["salt"])) for p in people]


def test_mask_text_primary_key_and_mixed_constant_and_per_row_masks(engine: Engine) -> None:
    """A text key (the pairs take the column's type and collation) and a NULL found value, left alone."""
    run_sql(engine, "CREATE TABLE account (handle VARCHAR(40) PRIMARY KEY, email VARCHAR(255), bio VARCHAR(64))")
    run_sql(engine, "INSERT INTO account (handle, email, bio) VALUES (:h, :e, :b)",
            [{"h": "ann'1", "e": "a@x.org", "b": "likes tea"}, {"h": "bøb", "e": "b@x.org", "b": None},
             {"h": "cid", "e": "c@x.org", "b": "keeps this"}])
    collection = Collection(
        CollectionAddress("ds", "account"),
        [FieldSpec(path="handle", primary_key=True, data_type="string"),
         FieldSpec(path="email", data_type="string"), FieldSpec(path="bio", data_type="string", length=64)],
    )
    rows = retrieve(SqlConnector(engine), collection, {"handle": ["ann'1", "bøb"]})
    bio = field_mask("aes_encrypt", length=64)

    masked = SqlConnector(engine).mask(collection, iter(rows), {"email": field_mask("null_rewrite"), "bio": bio})

    assert masked == 2
    assert sorted(fetch(engine, "SELECT handle, email, bio FROM account")) == [
        ("ann'1", None, bio.apply("likes tea")), ("bøb", None, None), ("cid", "c@x.org", "keeps this")]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # uuid columns are PostgreSQL's
def test_mask_per_row_on_a_postgresql_uuid_key(engine: Engine) -> None:
    """The driver hands a uuid key back as text; the pairs must still compare with the uuid column."""
    run_sql(engine, "CREATE TABLE device (id uuid PRIMARY KEY, label VARCHAR(255))")
    run_sql(engine, "INSERT INTO device (id, label) VALUES (gen_random_uuid(), :label)",
            [{"label": "kitchen"}, {"label": "hall"}])
    collection = Collection(CollectionAddress("ds", "device"),
                            [FieldSpec(path="id", primary_key=True), FieldSpec(path="label", data_type="string")])
    rows = retrieve(SqlConnector(engine), collection, {"label": ["kitchen"]})
    mask = field_mask("hash")

    assert SqlConnector(engine).mask(collection, iter(rows), {"label": mask}) == 1
    assert sorted(r[0] for r in fetch(engine, "SELECT label FROM device")) == sorted(["hall", mask.apply("kitchen")])


@pytest.mark.parametrize("strategy", ["null_rewrite", "hash"])
def test_mask_non_unique_primary_key_rolls_the_collection_back(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    """The declared key is not unique in the table: the second batch matches 3 rows for 2 keys, so the
    first batch, already written, is rolled back with it and nothing is masked."""
    monkeypatch.setattr(sql_module, "UPDATE_BATCH", 2)
    run_sql(engine, "CREATE TABLE visit (id INTEGER, name VARCHAR(255))")
    run_sql(engine, "INSERT INTO visit (id, name) VALUES (:id, :name)",
            [{"id": i, "name": f"name{i}"} for i in (1, 2, 3, 4, 4)])
    collection = Collection(CollectionAddress("ds", "visit"),
                            [FieldSpec(path="id", primary_key=True, data_type="integer"),
                             FieldSpec(path="name", data_type="string")])
    found = [{"id": i, "name": f"name{i}"} for i in (1, 2, 3, 4)]

    with pytest.raises(DataSourceError, match=r"ds:visit: the primary key \(id\) is not unique: 3 rows matched 2"):
        SqlConnector(engine).mask(collection, iter(found), {"name": field_mask(strategy)})

    assert sorted(fetch(engine, "SELECT id, name FROM visit")) == [(i, f"name{i}") for i in (1, 2, 3, 4, 4)]


# --- proof of erasure: one counting statement per chunk -------------------------------------------


def _accounts(engine: Engine) -> tuple[Collection, list[dict[str, Any]]]:
    """Five accounts with a text key; the first four are found (bio NULL for one of them)."""
    run_sql(engine, "CREATE TABLE account (handle VARCHAR(40) PRIMARY KEY, email VARCHAR(255), "
                    "label VARCHAR(40), bio VARCHAR(64), street VARCHAR(64))")
    people = [{"h": "ann'1", "b": "likes tea"}, {"h": "bøb", "b": None}, {"h": "cid", "b": "runs"},
              {"h": "dee", "b": "Ünïcode"}, {"h": "eve", "b": "keeps this"}]
    run_sql(engine, "INSERT INTO account (handle, email, label, bio, street) VALUES (:h, 'x@x.org', 'L', :b, 'S')",
            people)
    collection = Collection(CollectionAddress("ds", "account"), [
        FieldSpec(path="handle", primary_key=True, data_type="string"), FieldSpec(path="email", data_type="string"),
        FieldSpec(path="label", data_type="string", length=40), FieldSpec(path="bio", data_type="string", length=64),
        FieldSpec(path="street", data_type="string", length=64)])
    rows = retrieve(SqlConnector(engine), collection, {"handle": [p["h"] for p in people[:4]]})
    return collection, rows


def _account_masks() -> dict[str, FieldMask]:
    return {"email": field_mask("null_rewrite"), "label": field_mask("string_rewrite", {"rewrite_value": "REDACTED"}),
            "bio": field_mask("hash", length=64), "street": field_mask("random_string_rewrite", {"length": 12})}


def test_proof_is_one_counting_statement_per_chunk_and_passes_when_every_field_holds(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant and per-row masks together, chunks of 3 rows: the counting statements find the 4 masked rows
    present and holding what the UPDATEs wrote (NULL, the rewrite value, the hash, the random string)."""
    monkeypatch.setattr(sql_module, "UPDATE_BATCH", 3)
    collection, rows = _accounts(engine)
    connector, checks = SqlConnector(engine), verification.Checks(0)

    masked = connector.mask(collection, iter(rows), _account_masks(), checks)
    proof = verification.count(engine, checks)

    assert masked == 4 and connector.statements == 2 and checks.size == 3
    assert (proof.present, proof.verified, proof.unverified, proof.statements, proof.failed_chunks) == (4, 4, 0, 2, [])
    assert fetch(engine, "SELECT email, label, bio, street FROM account WHERE handle = 'eve'") == [
        ("x@x.org", "L", "keeps this", "S")]


@pytest.mark.parametrize("put_back", ["label = 'redacted'", "label = 'REDACTED '", "bio = 'runs'",
                                      "street = 'abcdefghijkl'", "email = 'x@x.org'", "bio = 'not null'"])
def test_proof_count_catches_a_value_that_differs_even_by_case_and_the_read_back_names_the_field(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, put_back: str) -> None:
    """Whatever the collation (MariaDB's is case-insensitive and pads spaces), a value that is not exactly
    what the UPDATE wrote counts; a NULL found must stay NULL (bøb's bio); the read-back of that chunk only
    names the field."""
    monkeypatch.setattr(sql_module, "UPDATE_BATCH", 3)
    collection, rows = _accounts(engine)
    masks, checks = _account_masks(), verification.Checks(0)
    SqlConnector(engine).mask(collection, iter(rows), masks, checks)
    target = "bøb" if put_back == "bio = 'not null'" else "cid"
    run_sql(engine, f"UPDATE account SET {put_back} WHERE handle = :h", {"h": target})

    proof = verification.count(engine, checks)
    chunk = [i for i, chunk in enumerate(verification.in_chunks(rows, 3)) if any(r["handle"] == target for r in chunk)]
    assert (proof.present, proof.verified, proof.failed_chunks) == (4, 3, chunk)

    read = verification.verify(engine, collection, verification.rows_of_chunks(iter(rows), 3, chunk), masks)
    field = put_back.split(" ")[0]
    if field == "street":  # a value of the random form: only the exact pair tells it from the one written
        assert read.verified == read.present
    else:
        assert verification.fields_left(read) == {field: 1}


def test_proof_of_constant_masks_counts_by_the_keys_in_list(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant masks only (the chunk's keys as an IN list, like its UPDATE): a NULL put back as a value and a
    rewrite value changed in case are counted, in their chunk only."""
    monkeypatch.setattr(sql_module, "UPDATE_BATCH", 2)
    collection, rows = _accounts(engine)
    masks = {"email": field_mask("null_rewrite"), "label": field_mask("string_rewrite", {"rewrite_value": "REDACTED"})}
    checks = verification.Checks(0)
    assert SqlConnector(engine).mask(collection, iter(rows), masks, checks) == 4
    assert " IN (" in checks.statements[0][0] and " JOIN " not in checks.statements[0][0]
    assert verification.count(engine, checks).failed_chunks == []

    run_sql(engine, "UPDATE account SET email = 'x@x.org' WHERE handle = :h", {"h": rows[0]["handle"]})
    run_sql(engine, "UPDATE account SET label = 'Redacted' WHERE handle = :h", {"h": rows[3]["handle"]})
    proof = verification.count(engine, checks)
    assert (proof.present, proof.verified, proof.failed_chunks) == (4, 2, [0, 1])


# --- errors --------------------------------------------------------------------------------------


def _retrieve_all(connector: SqlConnector, collection: Collection) -> None:
    list(connector.select_rows(collection, {"email": ["a@x.org"]}))


def _mask_one(connector: SqlConnector, collection: Collection) -> None:
    row = {"id": 1, "email": "a@x.org", "name": "Ann"}
    connector.mask(collection, iter([row]), {"name": field_mask("null_rewrite")})


OPERATIONS = pytest.mark.parametrize("operation", [_retrieve_all, _mask_one], ids=["retrieve", "mask"])


@OPERATIONS
def test_missing_table_raises_data_source_error_naming_the_collection(engine: Engine, operation) -> None:
    with pytest.raises(DataSourceError, match="ds:missing"):
        operation(SqlConnector(engine), customer_collection("missing"))


@OPERATIONS
def test_missing_table_named_like_a_connection_word_is_not_transient(engine: Engine, operation) -> None:
    """A missing table is a dataset error whatever its name; 'connections' must not look like a network error."""
    with pytest.raises(DataSourceError, match="ds:connections"):
        operation(SqlConnector(engine), customer_collection("connections"))


@OPERATIONS
def test_unreachable_database_raises_transient_error(engine: Engine, operation) -> None:
    """Servers: the same URL on closed port 1. SQLite has no port: its file is locked by another connection."""
    if engine.dialect.name != "sqlite":
        unreachable = create_engine(engine.url.set(host="127.0.0.1", port=1), connect_args={"connect_timeout": 5})
        with pytest.raises(TransientError, match="ds:customer"):
            operation(SqlConnector(unreachable), customer_collection())
        unreachable.dispose()
        return
    create_customers(engine)
    locked = create_engine(engine.url, connect_args={"timeout": 0.1})
    with closing(sqlite3.connect(engine.url.database, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(TransientError, match="ds:customer"):
            operation(SqlConnector(locked), customer_collection())
        holder.execute("ROLLBACK")
    locked.dispose()


def test_a_psycopg3_connect_failure_is_transient(tmp_path) -> None:
    """psycopg 3 words a refused connect 'connection failed: ...' with no SQLSTATE: still a reason to retry."""
    from sqlalchemy import create_engine

    from include.privacy_requests.errors import TransientError

    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database_here")
    with pytest.raises(TransientError):
        list(SqlConnector(engine).select_rows(customer_collection(), {"email": ["a@x.org"]}))
