"""Retention: remove the subject's identity from Airflow's own metadata database after a request is done.

Airflow keeps each request's identity where the engine cannot encrypt it: the run's conf (``dag_run.conf``),
the audit log of the REST or CLI trigger (``log.extra``, the whole trigger body) and the questions to a person
and their answers (``hitl_detail``, ``hitl_detail_history``). The request store keeps the report and the
ledger, which hold no identity, so after the retention period these copies are the only personal data left
in Airflow; this module replaces them with a marker such as ``[removed after 90 days]``.

The scrub takes a SQLAlchemy engine and the tables' definitions, so it knows nothing of Airflow; the Airflow
wing (``airflow/retention.py``) runs it from the ``privacy_request_retention`` DAG or as a command, and says
why it needs a connection of its own.

Only runs that ended (``success`` or ``failed``) before the cut-off are touched; the update of each run is
guarded by that condition, so a run cleared meanwhile is left alone. Logs carry counts, never values.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, Row

# The DAGs whose runs carry a subject's identity: one request per run, or a batch of subjects per run.
REQUEST_DAG_IDS = ("privacy_request", "privacy_request_batch")
FINISHED = ("success", "failed")
# Values under these keys are personal as a whole: identity values, and what a person entered in a form.
PERSONAL_KEYS = frozenset({"identity", "derived_identity", "params_input"})
# An audit-log row without a run id (a REST trigger without dag_run_id, the CLI) is written just before the
# run it creates: it belongs to the first run queued after it whose identity it holds.
TRIGGER_WINDOW = timedelta(minutes=5)
_MARKER = re.compile(r"^\[removed after \d+ days?\]$")
log = logging.getLogger(__name__)


def marker(after_days: int) -> str:
    return f"[removed after {after_days} days]"


def is_removed(value: str) -> bool:
    """Whether an identity value is the retention marker (for pages that show a request's identity)."""
    return bool(_MARKER.match(value))


def identity_values(conf: Any, identity_types: Collection[str] = ()) -> set[str]:
    """The identity values in a run's conf: ``identity`` of a request, ``subjects[].identity`` of a batch, and
    the trigger form's top-level fields named after an identity type (``email``)."""
    found: set[str] = set()
    if isinstance(conf, dict):
        found |= {v for k, v in conf.items() if k in identity_types and isinstance(v, str) and v.strip()
                  and not is_removed(v)}

    def walk(node: Any, personal: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, personal or key == "identity")
        elif isinstance(node, list):
            for value in node:
                walk(value, personal)
        elif personal and isinstance(node, str) and node.strip() and not is_removed(node):
            found.add(node)

    walk(conf, False)
    return found


def scrub(node: Any, values: Iterable[str], mark: str) -> Any:
    """``node`` with every personal key's value replaced by ``mark`` (its keys kept) and every occurrence
    of an identity value in a string too; anything else is kept, so the row still says what happened."""
    ordered = sorted(set(values), key=len, reverse=True)  # a value inside a longer one goes with it

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: blank(v, mark) if k in PERSONAL_KEYS else walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, str):
            for value in ordered:
                item = item.replace(value, mark)
        return item

    return walk(node)


def blank(node: Any, mark: str) -> Any:
    """Every value replaced by ``mark``; keys of objects are kept (which identity types a request gave)."""
    if isinstance(node, dict):
        return {k: blank(v, mark) for k, v in node.items()}
    return node if node in (None, "", [], {}) else mark


@dataclass
class RetentionResult:
    """Counts only: what was scrubbed, never what it said."""

    runs: int = 0
    log_rows: int = 0
    hitl_rows: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class MetadataTables:
    """The tables of Airflow's metadata database this pass reads and writes, as the caller defines them
    (Airflow's own models: see ``airflow_tables``), so column types (UTC datetimes, JSON/JSONB) match."""

    dag_run: sa.Table
    log: sa.Table
    task_instance: sa.Table
    task_instance_history: sa.Table
    hitl_detail: sa.Table
    hitl_detail_history: sa.Table


def remove_identities(engine: Engine, tables: MetadataTables, *, after_days: int,
                      dag_ids: Sequence[str] = REQUEST_DAG_IDS, now: datetime | None = None,
                      identity_types: Collection[str] = ()) -> RetentionResult:
    """Scrub every run of ``dag_ids`` that ended before ``after_days`` ago; one transaction per run.
    ``identity_types`` (the datasets' identity keys) name the trigger form's identity fields.

    Idempotent: a scrubbed run's conf holds no identity value any more and is skipped.
    """
    if after_days < 1:
        raise ValueError("after_days must be at least 1")
    dag_run = tables.dag_run
    cutoff = (now or datetime.now(UTC)) - timedelta(days=after_days)
    mark = marker(after_days)
    result = RetentionResult()
    old = sa.and_(dag_run.c.dag_id.in_(dag_ids), dag_run.c.state.in_(FINISHED), dag_run.c.end_date < cutoff)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(dag_run.c.id, dag_run.c.dag_id, dag_run.c.run_id, dag_run.c.conf)
                            .where(old).order_by(dag_run.c.id)).all()
    for run in runs:
        values = identity_values(run.conf, identity_types)
        if not values:
            continue  # scrubbed before, or a conf without identity
        try:
            with engine.begin() as conn:
                # The conf goes last: trigger rows are matched to runs by the identity in their conf.
                log_rows = _scrub_log(conn, tables, run, values, mark, identity_types)
                hitl_rows = _scrub_hitl(conn, tables, run, values, mark)
                if not conn.execute(sa.update(dag_run).where(dag_run.c.id == run.id, old)
                                    .values(conf=scrub(run.conf, values, mark))).rowcount:
                    raise _ClearedMeanwhile
        except _ClearedMeanwhile:
            continue  # running again since it was read: everything of this run is rolled back
        result.runs += 1
        result.log_rows += log_rows
        result.hitl_rows += hitl_rows
    return result


class _ClearedMeanwhile(Exception):
    """A run cleared (so no longer finished) between reading it and scrubbing it."""


def _scrub_log(conn: Connection, tables: MetadataTables, run: Row, values: set[str], mark: str,
               identity_types: Collection[str]) -> int:
    """Audit-log rows of the run: its own (trigger with dag_run_id, HITL answers, clears) and the trigger
    rows without run id that belong to it."""
    log_table, dag_run = tables.log, tables.dag_run
    queued = conn.execute(sa.select(sa.func.coalesce(dag_run.c.queued_at, dag_run.c.start_date))
                          .where(dag_run.c.id == run.id)).scalar()
    mine = log_table.c.run_id == run.run_id
    if queued is not None:
        mine = sa.or_(mine, sa.and_(log_table.c.run_id.is_(None),
                                    log_table.c.dttm.between(queued - TRIGGER_WINDOW, queued)))
    rows = conn.execute(sa.select(log_table.c.id, log_table.c.run_id, log_table.c.dttm, log_table.c.extra)
                        .where(log_table.c.dag_id == run.dag_id, mine, log_table.c.extra.is_not(None))).all()
    changed = 0
    for row in rows:
        if row.run_id is None and _trigger_run(conn, tables, run.dag_id, row, identity_types) != run.id:
            continue
        extra = _scrub_text(row.extra, values, mark)
        if extra != row.extra:
            conn.execute(sa.update(log_table).where(log_table.c.id == row.id).values(extra=extra))
            changed += 1
    return changed


def _trigger_run(conn: Connection, tables: MetadataTables, dag_id: str, row: Row,
                 identity_types: Collection[str]) -> int | None:
    """The run a trigger row without run id created: the first run of the DAG queued after the row whose
    every identity value the row holds (two requests for one person keep their own rows)."""
    dag_run = tables.dag_run
    queued = sa.func.coalesce(dag_run.c.queued_at, dag_run.c.start_date)
    candidates = conn.execute(
        sa.select(dag_run.c.id, dag_run.c.conf)
        .where(dag_run.c.dag_id == dag_id, queued.between(row.dttm, row.dttm + TRIGGER_WINDOW))
        .order_by(queued, dag_run.c.id)
    ).all()
    text = "\n".join(_strings(_parse(row.extra)))
    return next((c.id for c in candidates
                 if (values := identity_values(c.conf, identity_types)) and all(v in text for v in values)), None)


def _scrub_hitl(conn: Connection, tables: MetadataTables, run: Row, values: set[str], mark: str) -> int:
    """Questions to a person and their answers, for the run's task instances and their earlier tries.

    The body of a manual step lists what to look for or the records found, and the answer holds what a person
    entered: both go whole. Subject, form and options lose the identity values only.
    """
    ti, tih = tables.task_instance, tables.task_instance_history
    changed = 0
    for table, key, owners in (
        (tables.hitl_detail, "ti_id",
         sa.select(ti.c.id).where(ti.c.dag_id == run.dag_id, ti.c.run_id == run.run_id)),
        (tables.hitl_detail_history, "ti_history_id",
         sa.select(tih.c.task_instance_id).where(tih.c.dag_id == run.dag_id, tih.c.run_id == run.run_id)),
    ):
        columns = ("subject", "body", "options", "defaults", "params", "params_input")
        rows = conn.execute(sa.select(table.c[key], *(table.c[c] for c in columns))
                            .where(table.c[key].in_(owners))).all()
        for row in rows:
            new = {c: scrub(getattr(row, c), values, mark) for c in ("subject", "options", "defaults", "params")}
            new["body"] = mark if row.body else row.body
            new["params_input"] = blank(row.params_input, mark)
            if any(new[c] != getattr(row, c) for c in new):
                conn.execute(sa.update(table).where(table.c[key] == row[0]).values(**new))
                changed += 1
    return changed


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _scrub_text(text: str, values: set[str], mark: str) -> str:
    """A JSON column kept as text (``log.extra``): scrubbed as JSON, so escaped characters match too."""
    parsed = _parse(text)
    if isinstance(parsed, str):
        return scrub(text, values, mark)
    scrubbed = scrub(parsed, values, mark)
    return text if scrubbed == parsed else json.dumps(scrubbed)


def _strings(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node
