"""Generated data and configurations for the benchmark: a PostgreSQL database with a 20-collection graph
(three levels deep, the largest table at 1M rows, indexes on identity and reference columns), and the
matching configuration folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg2
import yaml

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
SUBJECT = "subject@example.com"


@dataclass(frozen=True)
class Sizes:
    users: int
    level2: int
    level3: int
    largest: int
    owned_level2: int = 100  # rows the subject owns in each level-2 table

    @classmethod
    def full(cls) -> Sizes:
        return cls(users=100_000, level2=200_000, level3=200_000, largest=1_000_000)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(users=1_000, level2=2_000, level3=2_000, largest=10_000, owned_level2=20)


LEVEL2 = ["account", "address", "login", "orders", "payment", "device"]


def level3(parent: str) -> list[str]:
    return [f"{parent}_detail", f"{parent}_history"]


def tables() -> list[tuple[str, str | None, str]]:
    """(table, parent table, parent key column) for the 20 collections; newsletter hangs off the identity."""
    result: list[tuple[str, str | None, str]] = [("users", None, "email"), ("newsletter", None, "email")]
    for parent in LEVEL2:
        result.append((parent, "users", "user_id"))
        result.extend((child, parent, "parent_id") for child in level3(parent))
    return result


def largest_table() -> str:
    return level3(LEVEL2[0])[0]


def connect(dbname: str = "postgres"):
    conn = psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)
    conn.autocommit = True
    return conn


def recreate_database(name: str) -> str:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def drop_database(name: str) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def load_graph(dbname: str, sizes: Sizes) -> None:
    """Create and fill the 20 tables with generate_series; the subject owns a slice of every table."""
    every = sizes.level2 // sizes.owned_level2  # every n-th level-2 row is the subject's
    conn = connect(dbname)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE users (id integer PRIMARY KEY, email text, name text, tenant text)")
        cur.execute("INSERT INTO users SELECT g, CASE WHEN g = 1 THEN %s ELSE 'u' || g || '@example.com' END, "
                    "'name ' || g, 't' || (g %% 10) FROM generate_series(1, %s) g", (SUBJECT, sizes.users))
        cur.execute("CREATE INDEX ON users (email)")
        cur.execute("CREATE TABLE newsletter (id integer PRIMARY KEY, email text, name text)")
        cur.execute("INSERT INTO newsletter SELECT g, CASE WHEN g %% 1000 = 0 THEN %s ELSE 'n' || g || "
                    "'@example.com' END, 'name ' || g FROM generate_series(1, %s) g", (SUBJECT, sizes.users))
        cur.execute("CREATE INDEX ON newsletter (email)")
        for table, parent, key in tables():
            if parent is None:
                continue
            rows = sizes.largest if table == largest_table() else (
                sizes.level2 if parent == "users" else sizes.level3)
            cur.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, {key} integer, name text, note text)")
            if parent == "users":
                owner = f"CASE WHEN g % {every} = 0 THEN 1 ELSE 2 + g % ({sizes.users} - 1) END"
            else:
                owner = f"1 + g % {sizes.level2}"
            cur.execute(f"INSERT INTO {table} SELECT g, {owner}, 'name ' || g, 'note' "
                        f"FROM generate_series(1, {rows}) g")
            cur.execute(f"CREATE INDEX ON {table} ({key})")
        cur.execute("ANALYZE")
    conn.close()


def restore_names(dbname: str) -> None:
    """Undo the benchmark's erasure (names back), so every measured run does the same work."""
    conn = connect(dbname)
    with conn.cursor() as cur:
        for table, _, _ in tables():
            cur.execute(f"UPDATE {table} SET name = 'name ' || id WHERE name IS NULL")
    conn.close()


def write_config(folder: Path, collections: list[tuple[str, str | None, str]], conn_id: str = "bench") -> Path:
    """A configuration folder for the generated tables: access returns everything, erasure nulls names."""
    (folder / "datasets").mkdir(parents=True, exist_ok=True)
    (folder / "policies").mkdir(exist_ok=True)
    (folder / "privacy.yml").write_text(yaml.safe_dump({
        "organization": "Bench Corp", "storage": f"file://{folder / 'storage'}",
        "datasets": {"bench": {"conn_id": conn_id, "access": "write"}},
    }))
    dataset = {"fides_key": "bench", "collections": [_collection(*c) for c in collections]}
    (folder / "datasets" / "bench.yml").write_text(yaml.safe_dump({"dataset": [dataset]}))
    (folder / "policies" / "bench.yml").write_text(yaml.safe_dump({"policy": [
        {"key": "bench_access", "rules": [{"key": "all", "action": "access", "targets": ["user"]}]},
        {"key": "bench_erasure", "rules": [{"key": "names", "action": "erasure", "targets": ["user.name"],
                                            "masking_strategy": {"strategy": "null_rewrite"}}]},
    ]}))
    return folder


def _collection(table: str, parent: str | None, key: str) -> dict:
    fields = [
        {"name": "id", "data_categories": ["system.operations"],
         "fides_meta": {"primary_key": True, "data_type": "integer"}},
        {"name": "name", "data_categories": ["user.name"], "fides_meta": {"data_type": "string"}},
    ]
    if parent is None:
        fields.append({"name": key, "data_categories": ["user.contact.email"],
                       "fides_meta": {"identity": "email", "data_type": "string"}})
    else:
        reference = {"dataset": "bench", "field": f"{parent}.id", "direction": "from"}
        fields.append({"name": key, "data_categories": ["system.operations"],
                       "fides_meta": {"data_type": "integer", "references": [reference]}})
    return {"name": table, "fields": fields}


def chain_config(folder: Path, count: int) -> Path:
    """A configuration of ``count`` collections (a tree three wide), for DAG parse times."""
    collections: list[tuple[str, str | None, str]] = [("c0", None, "email")]
    for index in range(1, count):
        collections.append((f"c{index}", f"c{(index - 1) // 3}", "parent_id"))
    return write_config(folder, collections)
