"""Which of the broker's columns hold which DROP identifier, and the hashes of their values, set-based.

The datasets say it: a field's identity type (``fides_meta.identity``), else its data category, else the
``drop.fields`` map of privacy.yml. Every collection in scope is read once per list it can match (one
statement, streamed), never once per work item. PostgreSQL and MySQL/MariaDB compute the Email and Phone
hashes themselves (``sha256``/``encode``, ``SHA2``/``TO_BASE64``); everything else (names need our
transliteration tables, SQLite has no SHA-256) is hashed in Python as the rows stream by.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import column, func, select, table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ..connectors.sql import classify_error
from ..errors import ConfigError
from ..model.drop_settings import CATEGORY_KINDS, IDENTITY_KINDS, DropSettings
from ..model.graph import Collection, CollectionAddress
from ..model.policy import category_matches
from ..model.settings import PrivacyConfig
from .hashing import LIST_FIELDS, list_hash

log = logging.getLogger(__name__)
FETCH_ROWS = 10_000
SQL_HASHED = ("Email", "Phone")
# Identity types worth seeding an erasure with, best first: one value that names one consumer.
ANCHOR_PREFERENCE = ("email", "phone_number", "maid", "advertising_id", "ctv_id", "ctvid", "vin")


@dataclass(frozen=True)
class Target:
    """One collection DROP lists are matched against."""

    address: CollectionAddress
    kinds: dict[str, str]  # identifier kind (email, first_name, ...) -> column
    keys: tuple[str, ...]  # primary key columns
    anchor: tuple[str, str]  # (identity type, column): what the consumer's erasure is seeded with
    exempt: str | None  # the exemption's reason, when every record here is exempt
    consumer: bool  # one row is one consumer: several rows matching one identifier are several consumers

    @property
    def lists(self) -> list[str]:
        return [lt for lt, fields in LIST_FIELDS.items() if all(k in self.kinds for k in fields)]


def _kind(config: PrivacyConfig, drop: DropSettings, collection: Collection, path: str) -> str | None:
    spec = collection.field(path)
    override = drop.fields.get(f"{collection.address}.{path}")
    if override:
        return override
    if spec is None or spec.is_object or "." in path:
        return None
    if spec.identity and spec.identity in IDENTITY_KINDS:
        return IDENTITY_KINDS[spec.identity]
    return next((CATEGORY_KINDS[c] for c in spec.data_categories if c in CATEGORY_KINDS), None)


def _exempt(drop: DropSettings, collection: Collection) -> str | None:
    address = collection.address
    for rule in drop.exemptions:
        if rule.dataset == address.dataset or rule.collection == str(address):
            return rule.reason
        if rule.category:
            categorized = [f for f in collection.leaf_fields if f.data_categories]
            if categorized and all(any(category_matches(c, rule.category) for c in f.data_categories)
                                   for f in categorized):
                return rule.reason
    return None


def plan_targets(config: PrivacyConfig) -> list[Target]:
    """The collections to match and how; ConfigError (before anything is touched) when one cannot be."""
    drop = config.settings.drop
    if drop is None:
        raise ConfigError("privacy.yml has no 'drop:' section")
    wanted = set(drop.match) if drop.match is not None else None
    problems: list[str] = []
    targets = []
    for address, collection in sorted(config.graph.collections.items(), key=lambda kv: str(kv[0])):
        if wanted is not None and str(address) not in wanted:
            continue
        if config.mapping(address.dataset).kind != "sql":
            if wanted is not None:
                problems.append(f"{address}: only SQL collections can be matched")
            continue
        kinds: dict[str, str] = {}
        for spec in collection.leaf_fields:
            kind = _kind(config, drop, collection, spec.path)
            if kind and kind not in kinds:
                kinds[kind] = spec.column
        if not any(all(k in kinds for k in fields) for fields in LIST_FIELDS.values()):
            if wanted is not None:
                problems.append(f"{address}: holds no DROP identifier (mark the fields' identity types)")
            continue
        identities = {f.identity: f.column for f in collection.fields if f.identity}
        anchor = next(((t, identities[t]) for t in ANCHOR_PREFERENCE if t in identities), None)
        if anchor is None and identities:
            anchor = sorted(identities.items())[0]
        keys = tuple(f.column for f in collection.primary_keys)
        if anchor is None or not keys:
            problems.append(f"{address}: a matched collection needs a primary key and an identity field (its "
                            "consumer's erasure starts from it)")
            continue
        consumer = drop.consumers is None or str(address) in drop.consumers
        targets.append(Target(address, kinds, keys, anchor, _exempt(drop, collection), consumer))
    if wanted is not None:
        problems += [f"{name}: no such collection" for name in sorted(wanted - {str(a) for a in
                                                                               config.graph.collections})]
    known = {str(a) for a in config.graph.collections}
    problems += [f"opt_out names {name}: no such collection" for name in sorted(set(drop.opt_out) - known)]
    if problems:
        raise ConfigError("drop: " + "; ".join(problems))
    if not targets:
        raise ConfigError("drop: no collection holds a DROP identifier (email, phone_number, first_name + "
                          "last_name + date_of_birth + postal_code, maid, vin, ctv_id identity types)")
    return targets


def _sql_hash(dialect: str, list_type: str, col: Any) -> Any | None:
    """The hash computed by the database, or None when this one cannot (then Python hashes)."""
    if list_type not in SQL_HASHED:
        return None
    if dialect == "postgresql":
        if list_type == "Email":
            standard = func.lower(func.regexp_replace(col, r"^\s+|\s+$", "", "g"))  # trimmed (hashing.py)
        else:
            standard = func.right(func.regexp_replace(col, "[^0-9]", "", "g"), 10)
        return func.encode(func.sha256(func.convert_to(func.nullif(standard, ""), "UTF8")), "base64")
    if dialect in ("mysql", "mariadb"):
        if list_type == "Email":
            standard = func.lower(func.regexp_replace(col, "^[[:space:]]+|[[:space:]]+$", ""))
        else:
            standard = func.right(func.regexp_replace(col, "[^0-9]", ""), 10)
        # The column's character set must be utf8mb4 (the default of MySQL 8 and MariaDB 10.6+): SHA2 hashes
        # the string's bytes in it.
        return func.to_base64(func.unhex(func.sha2(func.nullif(standard, ""), 256)))
    return None


def stream_hashes(engine: Engine, target: Target, list_type: str) -> Iterator[tuple[str, tuple[Any, ...], Any]]:
    """(hash, primary key, anchor value) of every row that has a hash in this list, streamed."""
    fields = LIST_FIELDS[list_type]
    columns = dict.fromkeys([*target.keys, target.anchor[1], *(target.kinds[k] for k in fields)])
    tbl = table(target.address.collection, *(column(c) for c in columns))
    in_sql = _sql_hash(engine.dialect.name, list_type, tbl.c[target.kinds[fields[0]]])
    if in_sql is not None:
        stmt = select(*(tbl.c[c] for c in (*target.keys, target.anchor[1])), in_sql.label("drop_hash"))
    else:
        stmt = select(*tbl.c)
    width = len(target.keys)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(stmt)
            for row in result:
                if in_sql is not None:
                    hashed = row[-1]
                    anchor = row[width]
                else:
                    record = row._mapping
                    hashed = list_hash(list_type, {k: record[target.kinds[k]] for k in fields})
                    anchor = record[target.anchor[1]]
                if hashed:
                    yield hashed.strip(), tuple(row[:width]), anchor
    except DBAPIError as exc:
        raise classify_error(exc, _collection_stub(target)) from exc


def _collection_stub(target: Target) -> Collection:
    return Collection(target.address, [])


def find_matches(targets: list[Target], wanted: dict[str, set[str]],
                 engine_for: Callable[[str], Engine]) -> Iterator[dict[str, Any]]:
    """Every row whose hash is in a list: {list, hash, address, key, anchor}. ``wanted`` holds each list's
    hashes (the new work items and the whole suppression list)."""
    for target in targets:
        engine = engine_for(target.address.dataset)
        for list_type in target.lists:
            hashes = wanted.get(list_type)
            if not hashes:
                continue
            found = 0
            for hashed, key, anchor in stream_hashes(engine, target, list_type):
                if hashed in hashes:
                    found += 1
                    yield {"list": list_type, "hash": hashed, "address": str(target.address), "key": list(key),
                           "anchor": anchor}
            log.info("DROP %s list against %s: %d matching row(s)", list_type, target.address, found)
