"""What "a batch does what N single requests do" means, checked the way a user would: the access package each
subject receives, every cell of the database after erasure, and what each vendor is told about each subject.

Single requests run one after another on one copy of the data, the batch on another copy. Masking strategies
with a value per request (``hash``: a secret salt per request) give different values in any two runs, so for
those columns the comparison is *which* cells changed; every other cell must be equal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text

Snapshot = dict[str, dict[tuple, dict[str, Any]]]  # table -> primary key -> column -> value


def snapshot(engine: Engine) -> Snapshot:
    """Every row of every table, keyed by primary key."""
    tables: Snapshot = {}
    inspector = inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            key = inspector.get_pk_constraint(table)["constrained_columns"]
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).mappings().all()
            tables[table] = {tuple(row[k] for k in key): dict(row) for row in rows}
    return tables


def changed_cells(before: Snapshot, after: Snapshot) -> set[tuple[str, tuple, str]]:
    """(table, primary key, column) of every cell whose value differs from before."""
    assert before.keys() == after.keys()
    cells = set()
    for table, rows in before.items():
        assert rows.keys() == after[table].keys(), f"rows added or removed in {table}"
        for key, row in rows.items():
            cells |= {(table, key, column) for column, value in row.items() if after[table][key][column] != value}
    return cells


def assert_same_erasure(before: Snapshot, singles: Snapshot, batch: Snapshot,
                        per_request_values: set[tuple[str, str]]) -> set[tuple[str, tuple, str]]:
    """The same cells changed in both runs; every changed cell is equal, except in the (table, column)s of
    ``per_request_values``. Returns the changed cells."""
    changed = changed_cells(before, singles)
    assert changed == changed_cells(before, batch), {
        "changed by the single requests only": sorted(changed - changed_cells(before, batch), key=str)[:20],
        "changed by the batch only": sorted(changed_cells(before, batch) - changed, key=str)[:20]}
    differing = [(t, k, c) for t, k, c in changed if (t, c) not in per_request_values
                 and singles[t][k][c] != batch[t][k][c]]
    assert not differing, f"cells masked to different values: {sorted(differing, key=str)[:20]}"
    return changed


def access_package(storage: Path, request_id: str) -> dict[str, list[str]]:
    """A subject's access package with each collection's rows in a canonical order (rows have no order)."""
    package = json.loads((storage / request_id / "access_package.json").read_text())
    return {collection: sorted(json.dumps(row, sort_keys=True) for row in rows) for collection, rows in package.items()}


def report_counts(storage: Path, request_id: str) -> dict[str, Any]:
    """What a subject's report says was done: its status and per collection the rows found and masked."""
    report = json.loads((storage / request_id / "report.json").read_text())
    return {"status": report["status"], "collections": {
        c["collection"]: ((c.get("access") or {}).get("rows"), (c.get("erasure") or {}).get("masked"))
        for c in report["collections"]}}


_SINGLE = re.compile(r"^Request reference: (?P<ref>\S+)\n(?P<body>.*?)^Please reply", re.S | re.M)
_DIGEST_REQUEST = re.compile(r"^=== Request (?P<ref>\S+) ===\n(?P<body>.*?)(?=^=== Request |^Please reply)",
                             re.S | re.M)


def single_instructions(text_part: str) -> tuple[str, str]:
    """(request reference, the instructions) of a single request's vendor email, as plain text."""
    match = _SINGLE.search(text_part.replace("\r\n", "\n"))
    assert match, text_part
    return match["ref"], match["body"].strip()


def digest_instructions(text_part: str) -> dict[str, str]:
    """request reference -> its instructions, from a digest (a batch's vendor email) listing them inline."""
    found = {m["ref"]: m["body"].strip() for m in _DIGEST_REQUEST.finditer(text_part.replace("\r\n", "\n"))}
    assert found, text_part
    return found


def run_single_dag(config_dir: Path, policy: str, identity: dict[str, str], request_id: str):
    """One privacy_request run in-process (dag.test); returns the run and its task states."""
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.model.loading import load_config
    from tests.support.dag_runs import task_states

    dag = build_privacy_request_dag(load_config(config_dir))
    dag_run = dag.test(run_conf={"policy": policy, "identity": identity, "request_id": request_id})
    return dag_run, task_states(dag, dag_run.run_id)


def run_batch_dag(config_dir: Path, policy: str, subjects: list[dict[str, Any]], batch_id: str):
    """One privacy_request_batch run in-process (dag.test); returns the run and its task states."""
    from include.privacy_requests.airflow.dag_factory import build_batch_dag
    from include.privacy_requests.model.loading import load_config
    from tests.support.dag_runs import task_states

    dag = build_batch_dag(load_config(config_dir))
    dag_run = dag.test(run_conf={"batch_id": batch_id, "policy": policy, "subjects": subjects})
    return dag_run, task_states(dag, dag_run.run_id)
