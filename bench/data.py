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


# -- a population: many subjects in one graph, for batches ---------------------------------------------
SHARED = ("address", "orders")  # level-2 tables whose rows a second user may share (a joint address, order)
ROWS_PER_PARENT = 2  # each user's rows in a level-2 table, and each level-2 row's rows in a level-3 table


def subject_email(number: int) -> str:
    return f"s{number}@example.com"


def subjects(count: int) -> list[dict]:
    """The batch's subjects in the population: request ``b-<n>`` for ``s<n>@example.com``."""
    return [{"request_id": f"b-{n}", "identity": {"email": subject_email(n)}} for n in range(1, count + 1)]


def load_population(dbname: str, count: int, others: int | None = None) -> None:
    """The 20 collections of ``tables()`` filled for ``count`` subjects (users 1..count, s<n>@example.com) and
    as many other users (``others``) whose rows an erasure must not touch. Each user owns ROWS_PER_PARENT
    rows in most level-2 tables (subject n owns none in the table at index n % 7, and has a newsletter row
    unless n % 4 == 0), each level-2 row ROWS_PER_PARENT rows in each of its level-3 tables; subject n = 1 mod 5
    shares its first row of each SHARED table with subject n + 1 (``shared_user_id``): both reach it."""
    users = count + (count if others is None else others)
    conn = connect(dbname)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE users (id integer PRIMARY KEY, email text, name text, tenant text)")
        cur.execute("INSERT INTO users SELECT g, CASE WHEN g <= %s THEN 's' ELSE 'u' END || g || '@example.com', "
                    "'name ' || g, 't' || (g %% 10) FROM generate_series(1, %s) g", (count, users))
        cur.execute("CREATE INDEX ON users (email)")
        cur.execute("CREATE TABLE newsletter (id integer PRIMARY KEY, email text, name text, note text)")
        cur.execute("INSERT INTO newsletter SELECT g, CASE WHEN g <= %s THEN 's' ELSE 'u' END || g || "
                    "'@example.com', 'name ' || g, 'note ' || g FROM generate_series(1, %s) g "
                    "WHERE g > %s OR g %% 4 <> 0", (count, users, count))
        cur.execute("CREATE INDEX ON newsletter (email)")
        for index, parent in enumerate(LEVEL2):
            shared = ", shared_user_id integer" if parent in SHARED else ""
            cur.execute(f"CREATE TABLE {parent} (id integer PRIMARY KEY, user_id integer, name text, "
                        f"note text{shared})")
            cur.execute(f"INSERT INTO {parent} (id, user_id, name, note) SELECT g, (g - 1) / {ROWS_PER_PARENT} + 1,"
                        f" 'name ' || g, 'note ' || g FROM generate_series(1, {users * ROWS_PER_PARENT}) g")
            cur.execute(f"DELETE FROM {parent} WHERE user_id <= %s AND user_id %% 7 = %s", (count, index))
            cur.execute(f"CREATE INDEX ON {parent} (user_id)")
            if shared:
                cur.execute(f"UPDATE {parent} SET shared_user_id = user_id + 1 WHERE user_id < %s "
                            f"AND user_id %% 5 = 1 AND (id - 1) %% {ROWS_PER_PARENT} = 0", (count,))
                cur.execute(f"CREATE INDEX ON {parent} (shared_user_id)")
            for child in level3(parent):
                cur.execute(f"CREATE TABLE {child} (id integer PRIMARY KEY, parent_id integer, name text, "
                            "note text)")
                cur.execute(f"INSERT INTO {child} SELECT p.id * {ROWS_PER_PARENT} + k, p.id, 'name ' || p.id, "
                            f"'note ' || k FROM {parent} p, generate_series(0, {ROWS_PER_PARENT - 1}) k")
                cur.execute(f"CREATE INDEX ON {child} (parent_id)")
        cur.execute("ANALYZE")
    conn.close()


def population_config(folder: Path, conn_id: str = "bench") -> Path:
    """The configuration of ``load_population``: ``bench_access`` returns everything, ``bench_erasure`` nulls
    names, ``bench_mixed_erasure`` also hashes notes (a value per row, from the request's secret)."""
    write_config(folder, tables(), conn_id)
    collections = []
    for table, parent, key in tables():
        collection = _collection(table, parent, key)
        collection["fields"].append({"name": "note", "data_categories": ["user.content.private"],
                                     "fides_meta": {"data_type": "string"}})
        if table in SHARED:
            reference = {"dataset": "bench", "field": "users.id", "direction": "from"}
            collection["fields"].append({"name": "shared_user_id", "data_categories": ["system.operations"],
                                         "fides_meta": {"data_type": "integer", "references": [reference]}})
        if table != "users":
            collections.append(collection)
        else:
            collections.append({"name": table, "fields": [f for f in collection["fields"] if f["name"] != "note"]})
    (folder / "datasets" / "bench.yml").write_text(yaml.safe_dump({"dataset": [
        {"fides_key": "bench", "collections": collections}]}))
    policies = yaml.safe_load((folder / "policies" / "bench.yml").read_text())
    policies["policy"].append({"key": "bench_mixed_erasure", "rules": [
        {"key": "names", "action": "erasure", "targets": ["user.name"],
         "masking_strategy": {"strategy": "null_rewrite"}},
        {"key": "notes", "action": "erasure", "targets": ["user.content"],
         "masking_strategy": {"strategy": "hash", "configuration": {"algorithm": "SHA-256"}}},
    ]})
    (folder / "policies" / "bench.yml").write_text(yaml.safe_dump(policies))
    return folder
