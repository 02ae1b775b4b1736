"""A batch does what the same single requests do, on the benchmark's generated graph in PostgreSQL (20
collections three levels deep): subjects 6 and 7 share an address and an order, 7 owns no account, and other
users' rows (the population's other subjects among them) sit next to theirs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text

from bench import data
from tests.support.equivalence import (
    access_package,
    assert_same_erasure,
    report_counts,
    run_batch_dag,
    run_single_dag,
    snapshot,
)

POPULATION, OTHERS = 7, 5
CHOSEN = (6, 7)  # each single request of the 20 collections costs about 8 s in dag.test: two keep CI short


@pytest.fixture
def copies() -> Iterator[tuple[str, str]]:
    """Two identical generated databases: one for the single requests, one for the batch."""
    names = [f"prq_test_{secrets.token_hex(6)}" for _ in range(2)]
    for name in names:
        data.recreate_database(name)
        data.load_population(name, POPULATION, OTHERS)
    yield names[0], names[1]
    for name in names:
        data.drop_database(name)


def engine(name: str) -> Engine:
    return create_engine(f"postgresql+psycopg2://{data.PG['user']}@{data.PG['host']}:{data.PG['port']}/{name}")


def use(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BENCH", f"postgres://{data.PG['user']}@{data.PG['host']}:{data.PG['port']}/{name}")


def test_a_batch_on_the_generated_graph_equals_its_single_requests(airflow_db: None, copies, tmp_path: Path,
                                                                   storage: Path, monkeypatch) -> None:
    config_dir = data.population_config(tmp_path / "config")
    settings = yaml.safe_load((config_dir / "privacy.yml").read_text())
    (config_dir / "privacy.yml").write_text(yaml.safe_dump({**settings, "retries": {"count": 0}}))
    singles_db, batch_db = copies
    before = snapshot(engine(singles_db))
    identities = {n: {"email": data.subject_email(n)} for n in CHOSEN}

    use(monkeypatch, singles_db)
    for policy, kind in (("bench_access", "access"), ("bench_mixed_erasure", "erasure")):
        for n, identity in identities.items():
            dag_run, states = run_single_dag(config_dir, policy, identity, f"s-{kind}-{n}")
            assert dag_run.state == "success", states
    use(monkeypatch, batch_db)
    for policy, kind in (("bench_access", "access"), ("bench_mixed_erasure", "erasure")):
        subjects = [{"request_id": f"b-{kind}-{n}", "identity": identity} for n, identity in identities.items()]
        dag_run, states = run_batch_dag(config_dir, policy, subjects, f"batch-{kind}")
        assert dag_run.state == "success", states

    for n in CHOSEN:
        assert access_package(storage, f"b-access-{n}") == access_package(storage, f"s-access-{n}"), n
        for kind in ("access", "erasure"):
            assert report_counts(storage, f"b-{kind}-{n}") == report_counts(storage, f"s-{kind}-{n}"), n
    addresses = {n: access_package(storage, f"b-access-{n}")["bench:address"] for n in (6, 7)}
    shared = set(addresses[6]) & set(addresses[7])
    assert len(shared) == 1 and (len(addresses[6]), len(addresses[7])) == (2, 3)  # 6 owns two, shares one with 7

    hashed = {(table, "note") for table, _, _ in data.tables() if table != "users"}
    changed = assert_same_erasure(before, snapshot(engine(singles_db)), snapshot(engine(batch_db)), hashed)
    with engine(singles_db).connect() as conn:
        owned = conn.execute(text("SELECT id FROM address WHERE user_id IN :ids OR shared_user_id IN :ids"),
                             {"ids": CHOSEN}).scalars().all()
        others = conn.execute(text("SELECT count(*) FROM users WHERE id NOT IN :ids AND name IS NULL"),
                              {"ids": CHOSEN}).scalar()
    assert {key for table, key, column in changed if table == "address" and column == "name"} == {
        (i,) for i in owned}
    assert others == 0  # the other subjects and users are untouched
    assert len({(t, k) for t, k, _ in changed}) >= 40 * len(CHOSEN)  # a few rows in most of the 20 tables
