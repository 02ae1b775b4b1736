"""Erasure preflight against real databases (SQLite, PostgreSQL, MariaDB; see conftest.engine).

The reported problems are checked against what erasure really does: every column the preflight flags makes
SqlConnector.mask fail (SQLite, which stores text in any column, aside), and every column it passes masks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text

from include.privacy_requests.connectors.preflight import Target, erasure_preflight, erasure_targets
from include.privacy_requests.connectors.sql import SqlConnector
from include.privacy_requests.errors import DataSourceError, TransientError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.masking import FieldMask, Masker, new_request_secrets
from include.privacy_requests.model.settings import PrivacyConfig
from tests.support.paths import DEMO_CONFIG

HASH = {"strategy": "hash"}
NULL = {"strategy": "null_rewrite"}
ACCOUNT_DDL = ("CREATE TABLE account (id INTEGER PRIMARY KEY, email VARCHAR(255), created_at TIMESTAMP, "
               "points INTEGER, code VARCHAR(10), name VARCHAR(50) NOT NULL, notes TEXT)")
ACCOUNT_ROW = {"id": 1, "email": "ann@example.org", "created_at": datetime(2024, 1, 5, 10, 0), "points": 5,
               "code": "A-1", "name": "Ann", "notes": "likes tea"}
# How each backend names the reflected types in a problem.
TIMESTAMP = {"sqlite": "TIMESTAMP", "postgresql": "TIMESTAMP WITHOUT TIME ZONE", "mysql": "TIMESTAMP"}
INTEGER = {"sqlite": "INTEGER", "postgresql": "INTEGER", "mysql": "INTEGER(11)"}


# --- helpers -------------------------------------------------------------------------------------


def fld(name: str, **meta: Any) -> dict[str, Any]:
    """A dataset field in its own data category (user.preflight.<name>), so a rule can target it alone."""
    category = "system.operations" if meta.get("primary_key") else f"user.preflight.{name}"
    return {"name": name, "data_categories": [category], **({"fides_meta": meta} if meta else {})}


def account_fields(**overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields of the account table, with fides_meta overrides by field name."""
    base: dict[str, dict[str, Any]] = {"id": {"primary_key": True, "data_type": "integer"},
                                       "email": {"identity": "email", "data_type": "string"},
                                       "created_at": {}, "points": {}, "code": {}, "name": {}, "notes": {}}
    return [fld(name, **{**meta, **overrides.get(name, {})}) for name, meta in base.items()]


def write_config(folder: Path, datasets: dict[str, tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]],
                 rules: dict[str, dict[str, Any]]) -> PrivacyConfig:
    """A configuration folder: datasets by key as (privacy.yml mapping, {collection: fields}), and one
    erasure policy 'erase' whose rules map a field name to its masking strategy."""
    folder.mkdir()
    (folder / "datasets").mkdir()
    (folder / "policies").mkdir()
    categories = sorted({c for _, collections in datasets.values() for fields in collections.values()
                         for f in fields for c in f["data_categories"] if c.startswith("user.preflight.")}
                        | {f"user.preflight.{name}" for name in rules})
    settings = {"organization": "Test", "storage": f"file://{folder}/store", "data_categories": categories,
                "datasets": {key: mapping for key, (mapping, _) in datasets.items()}}
    (folder / "privacy.yml").write_text(yaml.safe_dump(settings))
    for key, (_, collections) in datasets.items():
        body = {"dataset": [{"fides_key": key, "collections": [{"name": n, "fields": f}
                                                               for n, f in collections.items()]}]}
        (folder / "datasets" / f"{key}.yml").write_text(yaml.safe_dump(body))
    policy = {"key": "erase", "rules": [{"key": f"erase_{name}", "action": "erasure",
                                         "targets": [f"user.preflight.{name}"], "masking_strategy": spec}
                                        for name, spec in rules.items()]}
    (folder / "policies" / "erase.yml").write_text(yaml.safe_dump({"policy": [policy]}))
    return load_config(folder)


def shop_config(folder: Path, rules: dict[str, dict[str, Any]], **overrides: dict[str, Any]) -> PrivacyConfig:
    return write_config(folder, {"shop": ({"conn_id": "shop_db"}, {"account": account_fields(**overrides)})}, rules)


def engines(**by_conn_id: Engine) -> Callable[[str], Engine]:
    return lambda conn_id: by_conn_id[conn_id]


def preflight(config: PrivacyConfig, engine_for: Callable[[str], Engine]) -> list[str]:
    return erasure_preflight(config, config.policies["erase"], engine_for)


def run_sql(engine: Engine, *statements: str, params: dict[str, Any] | None = None) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params or {})


def create_account(engine: Engine) -> None:
    run_sql(engine, ACCOUNT_DDL)
    columns = ", ".join(ACCOUNT_ROW)
    run_sql(engine, f"INSERT INTO account ({columns}) VALUES ({', '.join(':' + c for c in ACCOUNT_ROW)})",
            params=ACCOUNT_ROW)


def erasure_fails(engine: Engine, target: Target, row: dict[str, Any] = ACCOUNT_ROW) -> bool:
    """Whether masking this one column of the row found during access fails, as erasure would mask it."""
    mask = FieldMask(Masker(target.spec.strategy, target.spec.configuration, new_request_secrets()), target.length)
    try:
        SqlConnector(engine).mask(target.collection, iter([dict(row)]), {target.column: mask})
    except DataSourceError:
        return True
    return False


def fields_of(problems: list[str]) -> set[str]:
    return {p.split(":", 2)[1].split(".")[1] for p in problems}


# --- a hash into a TIMESTAMP and its neighbours -------------------------------------------------------------


MISMATCHED = {"created_at": HASH, "points": HASH, "code": HASH, "name": NULL, "notes": HASH}


def test_each_mismatch_is_reported_with_field_type_and_fix(engine: Engine, tmp_path: Path) -> None:
    create_account(engine)
    backend = engine.dialect.name
    problems = preflight(shop_config(tmp_path / "privacy", MISMATCHED), engines(shop_db=engine))
    expected = [
        f"shop:account.created_at: strategy 'hash' writes text but the column is {TIMESTAMP[backend]}; "
        "use null_rewrite for this field, or give it data categories the erasure rules do not target",
        f"shop:account.points: strategy 'hash' writes text but the column is {INTEGER[backend]}; "
        "use null_rewrite for this field, or declare its data_type (integer) in the dataset so it is skipped",
        "shop:account.code: strategy 'hash' writes 64 characters but the column is VARCHAR(10); declare "
        "length: 10 for this field in the dataset (masked values are cut to it), or widen the column",
        "shop:account.name: strategy 'null_rewrite' writes NULL but the column is VARCHAR(50) NOT NULL; "
        "use string_rewrite (or another text strategy) for this field, or allow NULL in the column",
    ]
    if backend == "sqlite":  # SQLite ignores VARCHAR lengths: the hash fits
        expected.remove(expected[2])
    assert problems == expected


def test_the_reported_fields_are_those_erasure_fails_on(engine: Engine, tmp_path: Path) -> None:
    create_account(engine)
    config = shop_config(tmp_path / "privacy", MISMATCHED)
    reported = fields_of(preflight(config, engines(shop_db=engine)))
    targets = erasure_targets(config, config.policies["erase"])["shop_db"]
    failing = {t.column for t in targets if erasure_fails(engine, t)}
    if engine.dialect.name == "sqlite":
        # SQLite stores a hash in a TIMESTAMP or INTEGER column; its readers, expecting the type, then fail.
        assert (reported, failing) == ({"created_at", "points", "name"}, {"name"})
    else:
        assert reported == failing == {"created_at", "points", "code", "name"}


def test_a_correct_configuration_reports_nothing_and_erases(engine: Engine, tmp_path: Path) -> None:
    create_account(engine)
    rewrite = {"strategy": "string_rewrite", "configuration": {"rewrite_value": "erased"}}
    config = shop_config(tmp_path / "privacy", {"created_at": NULL, "points": HASH, "code": HASH, "name": rewrite,
                                                "notes": HASH},
                         points={"data_type": "integer"}, code={"length": 10})
    assert preflight(config, engines(shop_db=engine)) == []
    targets = erasure_targets(config, config.policies["erase"])["shop_db"]
    assert [t.column for t in targets] == ["created_at", "code", "name", "notes"]  # points: skipped by data_type
    assert [t.column for t in targets if erasure_fails(engine, t)] == []


# --- other checks ----------------------------------------------------------------------------------------------


def test_a_missing_table_or_column_is_named(engine: Engine, tmp_path: Path) -> None:
    create_account(engine)
    config = write_config(tmp_path / "privacy", {"shop": ({"conn_id": "shop_db"}, {
        "account": [*account_fields(), fld("nickname")],
        "ghost": [fld("id", primary_key=True), fld("mail", identity="email"), fld("notes")],
    })}, {"nickname": HASH, "notes": HASH})
    assert preflight(config, engines(shop_db=engine)) == [
        "shop:account.nickname: column 'nickname' does not exist in table 'account'; fix the field's name in "
        "the dataset",
        "shop:ghost: table 'ghost' does not exist in the database of connection 'shop_db'; fix the collection's "
        "name in the dataset, or the dataset's conn_id in privacy.yml",
    ]


def test_column_names_match_as_the_database_matches_them(engine: Engine, tmp_path: Path) -> None:
    """PostgreSQL compares quoted names exactly (the connector quotes 'Notes'); MariaDB and SQLite ignore case."""
    create_account(engine)
    fields = [f if f["name"] != "notes" else fld("Notes") for f in account_fields()]
    config = write_config(tmp_path / "privacy", {"shop": ({"conn_id": "shop_db"}, {"account": fields})},
                          {"Notes": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "erased"}}})
    problems = preflight(config, engines(shop_db=engine))
    [target] = erasure_targets(config, config.policies["erase"])["shop_db"]
    if engine.dialect.name == "postgresql":
        assert problems == ["shop:account.Notes: column 'Notes' does not exist in table 'account'; fix the "
                            "field's name in the dataset"]
        assert erasure_fails(engine, target)
    else:
        assert problems == []
        assert not erasure_fails(engine, target)


def test_fields_erasure_never_writes_are_not_checked(engine: Engine, tmp_path: Path) -> None:
    """Primary keys, read-only fields, fields skipped by their data_type, collections without a primary key
    and read-only datasets are never written: their columns may be anything, or missing."""
    create_account(engine)
    run_sql(engine, "CREATE TABLE visit (email VARCHAR(255), seen_at TIMESTAMP)")
    no_pk = [fld("email", identity="email"), fld("seen_at")]
    config = write_config(tmp_path / "privacy", {
        "shop": ({"conn_id": "shop_db"}, {
            "account": account_fields(created_at={"read_only": True}, points={"data_type": "integer"}),
            "visit": no_pk}),
        "archive": ({"conn_id": "archive_db", "access": "read"}, {"account": account_fields()}),
    }, {"id": HASH, "created_at": HASH, "points": HASH, "seen_at": HASH, "code": NULL})

    def engine_for(conn_id: str) -> Engine:
        assert conn_id == "shop_db", "a read-only dataset's database is not even connected to"
        return engine

    assert preflight(config, engine_for) == []
    assert [t.column for t in erasure_targets(config, config.policies["erase"])["shop_db"]] == ["code"]


def test_lengths_count_the_suffix_the_declared_cut_and_aes_minimum(engine: Engine, tmp_path: Path) -> None:
    create_account(engine)
    suffix = {"format_preservation": {"suffix": "@x.org"}}
    config = shop_config(tmp_path / "privacy", {
        "code": {"strategy": "aes_encrypt"},  # at least 40 characters, whatever the value
        "email": {"strategy": "aes_encrypt"},  # fits VARCHAR(255) for values up to ~160 characters: not flagged
        "name": {"strategy": "random_string_rewrite", "configuration": {"length": 45, **suffix}},  # 51 > 50
        "notes": {"strategy": "hash", "configuration": {"algorithm": "SHA-512"}},  # TEXT: unbounded
        "created_at": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "x"}},
    }, email={"data_categories": ["user.preflight.email"]}, created_at={"length": 20})
    problems = [p for p in preflight(config, engines(shop_db=engine)) if "created_at" not in p]
    if engine.dialect.name == "sqlite":
        assert problems == []
    else:
        assert problems == [
            "shop:account.code: strategy 'aes_encrypt' writes at least 40 characters but the column is "
            "VARCHAR(10); declare length: 10 for this field in the dataset (masked values are cut to it), or "
            "widen the column",
            "shop:account.name: strategy 'random_string_rewrite' writes 51 characters but the column is "
            "VARCHAR(50); declare length: 50 for this field in the dataset (masked values are cut to it), or "
            "widen the column",
        ]


def test_a_declared_length_longer_than_the_column_is_reported(engine: Engine, tmp_path: Path) -> None:
    create_account(engine)
    config = shop_config(tmp_path / "privacy", {"code": HASH}, code={"length": 20})
    expected = [] if engine.dialect.name == "sqlite" else [
        "shop:account.code: strategy 'hash' writes 20 characters (cut to the dataset's length 20) but the column "
        "is VARCHAR(10); declare length: 10 for this field in the dataset (masked values are cut to it), or "
        "widen the column"]
    assert preflight(config, engines(shop_db=engine)) == expected


def test_the_demo_configuration_passes_on_its_seed_database(engine: Engine) -> None:
    """Wired into validate_request, the preflight must not refuse the demo's own requests."""
    seed = (DEMO_CONFIG / "seed" / "demo_shop.sql").read_text()
    statements = ["\n".join(line for line in s.splitlines() if not line.startswith("--")).strip()
                  for s in seed.split(";")]
    run_sql(engine, *(s for s in statements if s))
    config = load_config(DEMO_CONFIG)
    assert len(erasure_targets(config, config.policies["default_erasure_policy"])["demo_shop_db"]) >= 5
    for chosen in config.policies.values():
        assert erasure_preflight(config, chosen, engines(demo_shop_db=engine)) == [], chosen.key


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_column_of_no_declared_type_is_given_the_benefit_of_the_doubt(engine: Engine, tmp_path: Path) -> None:
    run_sql(engine, "CREATE TABLE account (id INTEGER PRIMARY KEY, email, misc)")  # SQLite: no type, any value
    config = write_config(tmp_path / "privacy", {"shop": ({"conn_id": "shop_db"}, {"account": [
        fld("id", primary_key=True), fld("email", identity="email"), fld("misc")]})}, {"misc": HASH})
    assert preflight(config, engines(shop_db=engine)) == []


# --- ENUM and JSON (PostgreSQL and MariaDB) ----------------------------------------------------------------


ON_SERVERS = pytest.mark.parametrize("engine", ["postgresql", "mariadb"], indirect=True)


PREFS_FIELDS = {"prefs": [fld("id", primary_key=True), fld("email", identity="email"), fld("mood"), fld("fallback"),
                          fld("settings"), fld("extra"), fld("note")]}


PREFS_ROW = {"id": 1, "email": "ann@example.org", "mood": "ok", "fallback": "sad", "settings": '{"a": 1}',
             "extra": "[1]", "note": "n"}


def create_prefs(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        run_sql(engine, "CREATE TYPE mood AS ENUM ('ok', 'sad')",
                "CREATE TABLE prefs (id INTEGER PRIMARY KEY, email VARCHAR(255), mood mood, fallback mood, "
                "settings JSONB, extra JSONB, note VARCHAR(255))")
    else:  # MariaDB's JSON is a LONGTEXT with CHECK (json_valid(settings))
        run_sql(engine, "CREATE TABLE prefs (id INTEGER PRIMARY KEY, email VARCHAR(255), mood ENUM('ok', 'sad'), "
                        "fallback ENUM('ok', 'sad'), settings JSON, extra JSON, note VARCHAR(255))")
    run_sql(engine, "INSERT INTO prefs VALUES (:id, :email, :mood, :fallback, :settings, :extra, :note)",
            params=PREFS_ROW)


@ON_SERVERS
def test_enum_and_json_columns_accept_only_their_values(engine: Engine, tmp_path: Path) -> None:
    """An ENUM takes a string_rewrite to one of its values, a JSON column one to a JSON document ('{}')."""
    create_prefs(engine)
    config = write_config(tmp_path / "privacy", {"shop": ({"conn_id": "shop_db"}, PREFS_FIELDS)}, {
        "mood": HASH, "fallback": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "ok"}},
        "settings": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "REDACTED"}},
        "extra": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "{}"}}, "note": HASH})
    problems = preflight(config, engines(shop_db=engine))
    mood, settings = (("mood", "JSONB") if engine.dialect.name == "postgresql" else
                      ("ENUM('ok','sad')", "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin holding JSON "
                                           "(CHECK json_valid)"))
    assert problems == [
        f"shop:prefs.mood: strategy 'hash' writes text that is not one of the values the column ({mood}) "
        "accepts; use string_rewrite with one of ['ok', 'sad'], or null_rewrite, for this field",
        f"shop:prefs.settings: strategy 'string_rewrite' writes text but the column is {settings}; use "
        "null_rewrite for this field, or give it data categories the erasure rules do not target",
    ]
    failing = {t.column for t in erasure_targets(config, config.policies["erase"])["shop_db"]
               if erasure_fails(engine, t, PREFS_ROW)}
    assert failing == {"mood", "settings"}


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_postgresql_domain_is_checked_as_its_underlying_type(engine: Engine, tmp_path: Path) -> None:
    run_sql(engine, "CREATE DOMAIN short_text AS VARCHAR(10)", "CREATE DOMAIN day AS DATE",
            "CREATE TABLE account (id INTEGER PRIMARY KEY, email VARCHAR(255), code short_text, born day)")
    config = write_config(tmp_path / "privacy", {"shop": ({"conn_id": "shop_db"}, {"account": [
        fld("id", primary_key=True), fld("email", identity="email"), fld("code"), fld("born")]})},
        {"code": {"strategy": "string_rewrite", "configuration": {"rewrite_value": "erased"}}, "born": HASH})
    # SQLAlchemy reflects a domain's base type without its length (VARCHAR, not VARCHAR(10)): not checked.
    assert preflight(config, engines(shop_db=engine)) == [
        "shop:account.born: strategy 'hash' writes text but the column is day (DATE); use null_rewrite for "
        "this field, or give it data categories the erasure rules do not target",
    ]


# --- failures to reach the database ----------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://postgres:s3cret-pw@127.0.0.1:1/shop?connect_timeout=2",
    "mysql+mysqldb://root:s3cret-pw@127.0.0.1:1/shop?connect_timeout=2",
    "sqlite:////nonexistent-dir/s3cret-pw/shop.db",
], ids=["postgresql", "mariadb", "sqlite"])
def test_an_unreachable_database_is_transient_and_leaks_nothing(url: str, tmp_path: Path) -> None:
    config = shop_config(tmp_path / "privacy", MISMATCHED)
    engine = create_engine(url)
    try:
        with pytest.raises(TransientError) as caught:
            preflight(config, engines(shop_db=engine))
    finally:
        engine.dispose()
    assert str(caught.value).startswith("shop:account: OperationalError: ")
    assert "s3cret-pw" not in str(caught.value)
