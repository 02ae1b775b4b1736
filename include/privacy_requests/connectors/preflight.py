"""Erasure preflight: every column an erasure would write is checked against its masking strategy before
anything is touched.

Without it a mismatch shows up at erasure time, after other collections were already masked: a ``hash`` into
a TIMESTAMP fails there with a type error (fidesops skipped such a field silently and left the data
unerased), a 64-character hash overflows a VARCHAR(10), a ``null_rewrite`` hits a NOT NULL column. The
database's own column types are the truth, so the targeted tables are reflected: one ``get_columns`` per
table, on one connection per database.

Only what would fail (or break the column's declared type) is reported:

- a text-writing strategy on a column that does not hold text (TIMESTAMP, INTEGER, JSON, UUID, arrays …),
  or that holds only listed values (ENUM, SET) the strategy's output is not one of. Text and binary
  columns accept text; a column of no or unknown type (SQLAlchemy's NullType) is given the benefit of
  the doubt. SQLite stores anything anywhere, but the column's readers expect its declared type, so it is
  reported there too;
- a text output longer than a bounded column (VARCHAR(n), CHAR(n)) after the dataset's ``length`` cut,
  except on SQLite, which ignores lengths. A value-dependent output (``aes_encrypt``) is reported only when
  even a one-character value cannot fit;
- ``null_rewrite`` on a NOT NULL column;
- a targeted table or column that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, inspect, text
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.types import JSON, Enum, NullType, TypeEngine

from ..model.graph import Collection, CollectionAddress
from ..model.masking import Masker, new_request_secrets
from ..model.policy import MaskingStrategySpec, Policy
from ..model.settings import PrivacyConfig
from .delete_preflight import delete_problems
from .dialects import case_sensitive_names
from .sql import classify_error, written_fields

EngineFor = Callable[[str], Engine]
# Python types of the values a column holds that a written string is stored as, unchanged.
_TEXT_PYTHON_TYPES = (str, bytes)
# A declared fideslang data_type that makes execution skip a text strategy, by the column's Python type.
_FIDES_TYPES: dict[type, str] = {int: "integer", float: "float", Decimal: "float", bool: "boolean"}


@dataclass(frozen=True)
class Target:
    """One column an erasure of the policy would write, with its strategy and the dataset's ``length``."""

    collection: Collection
    column: str
    spec: MaskingStrategySpec
    length: int | None

    @property
    def where(self) -> str:
        return f"{self.collection.address}.{self.column}"


def masked_fields(policy: Policy, collection: Collection) -> dict[str, MaskingStrategySpec]:
    """The fields an SQL erasure writes: the policy's erasable fields as the SQL connector chooses among them,
    so the preflight checks exactly what erasure will do."""
    return written_fields(collection, policy.erasure_fields(collection))


def erasure_targets(config: PrivacyConfig, policy: Policy) -> dict[str, list[Target]]:
    """Per connection id, the columns the policy's erasure writes; read-only datasets, vendor and manual
    datasets and collections without a primary key (nothing is erased there) are left out."""
    targets: dict[str, list[Target]] = {}
    for address in sorted(config.graph.collections):
        mapping = config.mapping(address.dataset)
        collection = config.graph.collections[address]
        if mapping.kind != "sql" or mapping.access == "read" or not collection.primary_keys:
            continue
        if policy.deletes(collection):  # nothing is written: delete_preflight.py checks the foreign keys
            continue
        for path, spec in masked_fields(policy, collection).items():
            fld = collection.field(path)
            assert fld is not None and mapping.conn_id is not None
            targets.setdefault(mapping.conn_id, []).append(Target(collection, path, spec, fld.length))
    return targets


def erasure_preflight(config: PrivacyConfig, policy: Policy, engine_for: EngineFor) -> list[str]:
    """One problem per erasure target its column would refuse, naming the collection, the field, the
    column's type and the fix; [] when erasure can write every targeted column.

    ``engine_for`` maps a connection id to its SQLAlchemy engine. A database that cannot be reached raises
    TransientError (retry); one that refuses to describe its tables raises DataSourceError. Only column
    metadata is read, never a row.
    """
    if not policy.erasure_rules:
        return []
    problems: list[str] = []
    for conn_id, targets in erasure_targets(config, policy).items():
        problems += _check_database(engine_for(conn_id), conn_id, targets)
    return problems + delete_problems(config, policy, engine_for)


def _check_database(engine: Engine, conn_id: str, targets: list[Target]) -> list[str]:
    problems: list[str] = []
    by_table: dict[CollectionAddress, list[Target]] = {}
    for target in targets:
        by_table.setdefault(target.collection.address, []).append(target)
    current = targets[0].collection
    try:
        with engine.connect() as conn:
            json_checked = _mariadb_json_columns(conn, {a.collection for a in by_table})
            inspector = inspect(conn)
            for address, table_targets in by_table.items():
                current = table_targets[0].collection
                try:
                    columns = inspector.get_columns(address.collection)
                except NoSuchTableError:
                    problems.append(f"{address}: table '{address.collection}' does not exist in the database of "
                                    f"connection '{conn_id}'; fix the collection's name in the dataset, or the "
                                    "dataset's conn_id in privacy.yml")
                    continue
                for target in table_targets:
                    problems += _check_column(target, columns, conn, json_checked)
    except DBAPIError as exc:
        raise classify_error(exc, current) from exc  # TransientError when the server could not be reached
    return problems


def _mariadb_json_columns(conn: Connection, tables: set[str]) -> set[tuple[str, str]]:
    """MariaDB's JSON is a LONGTEXT with a column CHECK (json_valid(col)) that reflection does not show,
    and that refuses a hash as surely as a JSON type would; one query for all the tables."""
    if not getattr(conn.dialect, "is_mariadb", False):
        return set()
    query = text("SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                 "WHERE CONSTRAINT_SCHEMA = DATABASE() AND LEVEL = 'Column' AND TABLE_NAME IN :tables"
                 ).bindparams(bindparam("tables", expanding=True))
    rows = conn.execute(query, {"tables": sorted(tables)})
    return {(table, name) for table, name, clause in rows if clause == f"json_valid(`{name}`)"}


def _check_column(target: Target, columns: list[dict[str, Any]], conn: Connection,
                  json_checked: set[tuple[str, str]]) -> list[str]:
    table = target.collection.address.collection
    column = _find(columns, target.column, case_sensitive=case_sensitive_names(conn.dialect.name))
    if column is None:
        return [f"{target.where}: column '{target.column}' does not exist in table '{table}'; fix the field's "
                "name in the dataset"]
    type_ = _base_type(column["type"])
    shown = _type_name(column["type"], conn)
    if type_ is not column["type"]:
        shown += f" ({_type_name(type_, conn)})"
    nullable = bool(column.get("nullable", True))
    if target.spec.strategy == "null_rewrite":
        return [] if nullable else [_not_null_problem(target, shown, type_)]
    if (table, column["name"]) in json_checked:
        shown, type_ = f"{shown} holding JSON (CHECK json_valid)", JSON()
    problem = _text_problem(target, type_, shown, nullable)
    if problem is None and _listed_values(type_) is None:
        problem = _length_problem(target, type_, shown, conn)
    return [problem] if problem else []


def _find(columns: list[dict[str, Any]], name: str, case_sensitive: bool) -> dict[str, Any] | None:
    """The reflected column of a field; MySQL and SQLite match column names regardless of case, as the
    connector's queries will."""
    exact = next((c for c in columns if c["name"] == name), None)
    if exact is not None or case_sensitive:
        return exact
    return next((c for c in columns if c["name"].lower() == name.lower()), None)


def _base_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """A PostgreSQL domain accepts what its underlying type accepts."""
    underlying = getattr(type_, "data_type", None)
    return _base_type(underlying) if isinstance(underlying, TypeEngine) else type_


def _type_name(type_: TypeEngine[Any], conn: Connection) -> str:
    try:
        return str(type_.compile(dialect=conn.dialect))
    except Exception:  # a type without DDL (NullType): its class name still says what it is
        return type(type_).__name__


def _python_type(type_: TypeEngine[Any]) -> type | None:
    try:
        return type_.python_type
    except NotImplementedError:
        return None


def _masker(target: Target) -> Masker:
    return Masker(target.spec.strategy, target.spec.configuration, new_request_secrets())


def _sample(target: Target) -> str:
    """What the strategy writes for a one-character value (the length of every output but aes_encrypt's,
    and the shortest of those), cut to the dataset's ``length`` as erasure cuts it."""
    return _masker(target).mask("x", target.length) or ""


def _holds_text(type_: TypeEngine[Any]) -> bool:
    """Whether a written string is stored as it is: text and binary columns, and columns of no or unknown
    type (given the benefit of the doubt). JSON is not text: a hash is not a JSON document."""
    if isinstance(type_, NullType):
        return True
    return not isinstance(type_, JSON) and _python_type(type_) in _TEXT_PYTHON_TYPES


def _text_problem(target: Target, type_: TypeEngine[Any], shown: str, nullable: bool) -> str | None:
    strategy = f"strategy '{target.spec.strategy}'"
    values = _listed_values(type_)
    if values is not None:
        if not _masker(target).per_row and _sample(target) in values:
            return None
        return (f"{target.where}: {strategy} writes text that is not one of the values the column ({shown}) "
                f"accepts; use string_rewrite with one of {sorted(values)}"
                + (", or null_rewrite, for this field" if nullable else " for this field"))
    if _holds_text(type_) or (isinstance(type_, JSON) and _writes_json(target)):
        return None
    return f"{target.where}: {strategy} writes text but the column is {shown}; {_type_fix(type_, nullable)}"


def _writes_json(target: Target) -> bool:
    """A string_rewrite to a JSON document ('{}', 'null') fits a JSON column; a per-row output never does."""
    if _masker(target).per_row:
        return False
    try:
        json.loads(_sample(target))
    except ValueError:
        return False
    return True


def _listed_values(type_: TypeEngine[Any]) -> set[str] | None:
    """The only values an ENUM (or MySQL SET) column takes, None for any other column."""
    if isinstance(type_, Enum):
        return set(type_.enums)
    values = getattr(type_, "values", None)  # mysql.SET
    return set(values) if isinstance(values, (tuple, list)) else None


def _type_fix(type_: TypeEngine[Any], nullable: bool) -> str:
    """null_rewrite erases any nullable column; a declared data_type makes erasure skip the field on purpose
    (logged), which fideslang allows only for numbers and booleans; otherwise the field must not be targeted."""
    fixes = ["use null_rewrite for this field"] if nullable else []
    python_type = _python_type(type_)
    fides_type = _FIDES_TYPES.get(python_type) if python_type else None
    if fides_type:
        fixes.append(f"declare its data_type ({fides_type}) in the dataset so it is skipped")
    else:
        fixes.append("give it data categories the erasure rules do not target")
    return ", or ".join(fixes)


def _length_problem(target: Target, type_: TypeEngine[Any], shown: str, conn: Connection) -> str | None:
    limit = getattr(type_, "length", None)
    if not isinstance(limit, int) or conn.dialect.name == "sqlite":
        return None
    written = len(_sample(target))
    if written <= limit:
        return None
    at_least = "at least " if target.spec.strategy == "aes_encrypt" else ""
    cut = f" (cut to the dataset's length {target.length})" if target.length is not None else ""
    return (f"{target.where}: strategy '{target.spec.strategy}' writes {at_least}{written} characters{cut} but "
            f"the column is {shown}; declare length: {limit} for this field in the dataset (masked values are "
            "cut to it), or widen the column")


def _not_null_problem(target: Target, shown: str, type_: TypeEngine[Any]) -> str:
    fix = ("use string_rewrite (or another text strategy) for this field" if _holds_text(type_)
           else "give it data categories the erasure rules do not target")
    return (f"{target.where}: strategy 'null_rewrite' writes NULL but the column is {shown} NOT NULL; {fix}, or "
            "allow NULL in the column")
