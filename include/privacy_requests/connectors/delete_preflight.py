"""Preflight of erasure by deleting: every foreign key that would make the database refuse a policy's delete is
reported before anything changes.

A row can be deleted when nothing points at it any more. A foreign key into a table whose records the policy
deletes is harmless when the database resolves it itself (``ON DELETE CASCADE``, ``SET NULL``, ``SET
DEFAULT``), or when the referencing table is a collection that, before the delete:

- is erased by the same policy, by deleting its records or by ``null_rewrite`` of every column of the key;
- finds every row that points at a deleted row: its access looks the key's columns up with the values of the
  referenced columns found in the deleted collection (a reference ``direction: from`` the parent's key).

Any other foreign key is a problem naming the constraint, both tables and the fix. The tables' foreign keys are
reflected from the database (one pass per database); SQLite enforces them only with ``PRAGMA foreign_keys``
on, so they are checked only then. Only metadata is read, never a row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from ..model.graph import Collection, CollectionAddress
from ..model.policy import Policy
from ..model.settings import PrivacyConfig
from .dialects import case_sensitive_names, enforces_foreign_keys
from .sql import classify_error

EngineFor = Callable[[str], Engine]
_RESOLVED_BY_DATABASE = ("CASCADE", "SET NULL", "SET DEFAULT")


def deleted_by(config: PrivacyConfig, policy: Policy) -> dict[str, list[Collection]]:
    """Per connection id, the SQL collections whose records the policy deletes (where it erases anything)."""
    result: dict[str, list[Collection]] = {}
    for address in sorted(config.graph.collections):
        mapping, collection = config.mapping(address.dataset), config.graph.collections[address]
        if (mapping.kind == "sql" and mapping.access != "read" and collection.primary_keys
                and policy.deletes(collection)):
            result.setdefault(mapping.conn_id or "", []).append(collection)
    return result


def delete_problems(config: PrivacyConfig, policy: Policy, engine_for: EngineFor) -> list[str]:
    """One problem per foreign key that would block one of the policy's deletes; [] when none would."""
    problems: list[str] = []
    for conn_id, parents in deleted_by(config, policy).items():
        engine = engine_for(conn_id)
        try:
            with engine.connect() as conn:
                if not _enforced(conn):
                    continue
                for child_table, fk in _foreign_keys(conn):
                    parent = _match(parents, fk["referred_table"], conn)
                    if parent is None or (fk.get("options") or {}).get("ondelete", "").upper() in \
                            _RESOLVED_BY_DATABASE:
                        continue
                    why = _not_covered(config, policy, conn_id, parent, child_table, fk, conn)
                    if why:
                        problems.append(_problem(parent, child_table, fk, why))
        except DBAPIError as exc:
            raise classify_error(exc, parents[0]) from exc
    return problems


def _enforced(conn: Connection) -> bool:
    return enforces_foreign_keys(conn.dialect.name, lambda: bool(conn.execute(text("PRAGMA foreign_keys")).scalar()))


def _foreign_keys(conn: Connection) -> list[tuple[str, dict[str, Any]]]:
    """Every foreign key of the connection's default schema, with its table."""
    multi = inspect(conn).get_multi_foreign_keys()
    return [(table, fk) for (_schema, table), fks in sorted(multi.items(), key=lambda kv: kv[0][1]) for fk in fks
            if fk.get("referred_table")]


def _same(a: str, b: str, conn: Connection) -> bool:
    return a == b if case_sensitive_names(conn.dialect.name) else a.lower() == b.lower()


def _match(collections: list[Collection], table: str, conn: Connection) -> Collection | None:
    return next((c for c in collections if _same(c.address.collection, table, conn)), None)


def _not_covered(config: PrivacyConfig, policy: Policy, conn_id: str, parent: Collection, child_table: str,
                 fk: dict[str, Any], conn: Connection) -> str | None:
    """Why the rows pointing at a deleted row may still be there when it is deleted; None when they will not."""
    table_ref = f"table '{child_table}'"
    child = _match([c for a, c in config.graph.collections.items()
                    if config.mapping(a.dataset).conn_id == conn_id], child_table, conn)
    pairs = list(zip(fk["constrained_columns"], fk["referred_columns"], strict=False))
    reference = " and ".join(f"'{c}' referencing {parent.address.dataset}.{parent.address.collection}.{r} "
                             "(direction: from)" for c, r in pairs)
    if child is None:
        return (f"{table_ref} is not a collection of any dataset on this connection: declare it, with {reference}, "
                "and erase it with this policy (delete, or null_rewrite of the key)")
    if child.address == parent.address:
        return "the table references itself: rows of other subjects may point at the subject's rows"
    if config.mapping(child.address.dataset).access == "read":
        return f"{child.address} is read-only (access: read), so its rows are never erased"
    if not _erases_key(policy, child, [c for c, _ in pairs], conn):
        return (f"policy '{policy.key}' leaves {child.address}'s key ({', '.join(c for c, _ in pairs)}) in place: "
                f"let a delete rule target a field of {child.address}, or null_rewrite the key")
    if not _before(config, parent.address, child.address):
        return f"{child.address} is not erased before {parent.address}: add it to erase_after, or reference the key"
    inputs = {(i.source_field, i.target_field) for i in config.plan.inputs[child.address] if i.source == parent.address}
    missing = [c for c, r in pairs if not any(_same(t, c, conn) and _same(s, r, conn) for s, t in inputs)]
    if missing:
        return (f"{child.address} does not look its rows up by the key from {parent.address}, so rows pointing at a "
                f"deleted row may not be found: give it {reference}")
    return None


def _erases_key(policy: Policy, child: Collection, columns: list[str], conn: Connection) -> bool:
    if not child.primary_keys:
        return False
    fields = policy.erasure_fields(child)
    if policy.deletes(child):
        return True
    nulled = {path for path, spec in fields.items() if spec.strategy == "null_rewrite"}
    return all(any(_same(path, column, conn) for path in nulled) for column in columns)


def _before(config: PrivacyConfig, parent: CollectionAddress, child: CollectionAddress) -> bool:
    """Whether ``child``'s erasure finishes before ``parent``'s, through any chain of the erasure order."""
    seen: set[CollectionAddress] = set()
    stack = list(config.erasure_waits[parent])
    while stack:
        node = stack.pop()
        if node == child:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(config.erasure_waits[node])
    return False


def _problem(parent: Collection, child_table: str, fk: dict[str, Any], why: str) -> str:
    name = fk.get("name") or "(unnamed)"
    ondelete = ((fk.get("options") or {}).get("ondelete") or "NO ACTION").upper()
    return (f"{parent.address}: deleting its records would be refused by foreign key {name} of table "
            f"'{child_table}' ({', '.join(fk['constrained_columns'])}) -> '{fk['referred_table']}' "
            f"({', '.join(fk['referred_columns'])}), ON DELETE {ondelete}: {why}; or make the key ON DELETE "
            "CASCADE or SET NULL")
