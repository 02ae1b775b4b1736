"""Retention: remove the subject's identity from Airflow's own metadata database after a request is done.

Airflow keeps each request's identity where the engine cannot encrypt it: the run's conf (``dag_run.conf``),
the audit log of the REST or CLI trigger (``log.extra``, the whole trigger body) and the questions to a person
and their answers (``hitl_detail``, ``hitl_detail_history``). The request store keeps the report and the
ledger, which hold no identity, so after the retention period these copies are the only personal data left
in Airflow; this module replaces them with a marker such as ``[removed after 90 days]``.

Where it runs: Airflow 3 gives task code no metadata DB session (the Task SDK swaps ``settings.Session`` for
one that raises and points ``sql_alchemy_conn`` at ``airflow-db-not-allowed:///``, also for subprocesses, so
``airflow db ...`` in a BashOperator fails too), and no REST endpoint edits a run's conf, an audit-log row
or an answered question. So the scrub takes a SQLAlchemy engine, and is run either

- by the ``privacy_request_retention`` DAG, through an Airflow connection to the metadata database that the
  deployment creates on purpose (``privacy_metadata_db``, ideally a database role allowed to read and update
  only the columns below), or
- as a command where Airflow's own database settings are (the scheduler's host, a cron job):
  ``python -m include.privacy_requests.retention --after-days 90``.

Only runs that ended (``success`` or ``failed``) before the cut-off are touched; the update of each run is
guarded by that condition, so a run cleared meanwhile is left alone. Logs carry counts, never values.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from airflow.sdk import DAG
    from sqlalchemy.engine import Connection, Engine, Row

    from .config import PrivacyConfig

RETENTION_DAG_ID = "privacy_request_retention"
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


@dataclass(frozen=True)
class RetentionSettings:
    """When the DAG runs, after how many days an identity goes, and the connection to the metadata DB."""

    schedule: str = "@daily"
    after_days: int = 90
    conn_id: str = "privacy_metadata_db"


def retention_settings(config: PrivacyConfig) -> RetentionSettings:
    """privacy.yml's ``retention`` section once the configuration has one; these defaults until then."""
    section = getattr(config.settings, "retention", None)
    if section is None:
        return RetentionSettings()
    return RetentionSettings(**{f.name: getattr(section, f.name) for f in fields(RetentionSettings)
                                if getattr(section, f.name, None) is not None})


def marker(after_days: int) -> str:
    return f"[removed after {after_days} days]"


def is_removed(value: str) -> bool:
    """Whether an identity value is the retention marker (for pages that show a request's identity)."""
    return bool(_MARKER.match(value))


def identity_values(conf: Any) -> set[str]:
    """The identity values in a run's conf: ``identity`` of a request, ``subjects[].identity`` of a batch."""
    found: set[str] = set()

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
                      dag_ids: Sequence[str] = REQUEST_DAG_IDS, now: datetime | None = None) -> RetentionResult:
    """Scrub every run of ``dag_ids`` that ended before ``after_days`` ago; one transaction per run.

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
        values = identity_values(run.conf)
        if not values:
            continue  # scrubbed before, or a conf without identity
        try:
            with engine.begin() as conn:
                # The conf goes last: trigger rows are matched to runs by the identity in their conf.
                log_rows = _scrub_log(conn, tables, run, values, mark)
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


def _scrub_log(conn: Connection, tables: MetadataTables, run: Row, values: set[str], mark: str) -> int:
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
        if row.run_id is None and _trigger_run(conn, tables, run.dag_id, row) != run.id:
            continue
        extra = _scrub_text(row.extra, values, mark)
        if extra != row.extra:
            conn.execute(sa.update(log_table).where(log_table.c.id == row.id).values(extra=extra))
            changed += 1
    return changed


def _trigger_run(conn: Connection, tables: MetadataTables, dag_id: str, row: Row) -> int | None:
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
                 if (values := identity_values(c.conf)) and all(v in text for v in values)), None)


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


# Airflow adapters below: every Airflow import is made when called, so importing this module loads no Airflow
# (the engine boundary); they belong in include/privacy_requests/airflow/ with the other DAG builders.


def airflow_tables() -> MetadataTables:
    """The table definitions of the installed Airflow, which match its database's schema."""
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.hitl_history import HITLDetailHistory
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory

    return MetadataTables(dag_run=DagRun.__table__, log=Log.__table__, task_instance=TaskInstance.__table__,
                          task_instance_history=TaskInstanceHistory.__table__, hitl_detail=HITLDetail.__table__,
                          hitl_detail_history=HITLDetailHistory.__table__)


def metadata_engine(conn_id: str) -> Engine:
    """The SQLAlchemy engine of the connection to Airflow's metadata database; refuses any other database.

    Task code has no metadata DB session in Airflow 3 and no API edits what has to go, so the deployment
    grants this on purpose, with a connection it can narrow to the columns changed (see the README).
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise AirflowFailException(
            f"connection '{conn_id}' does not exist: create it for Airflow's metadata database (README, 'What "
            "Airflow keeps'), or run `python -m include.privacy_requests.retention` where Airflow's database "
            "settings are") from None
    hook = connection.get_hook()
    if not hasattr(hook, "get_sqlalchemy_engine"):
        raise AirflowFailException(f"connection '{conn_id}' ({connection.conn_type}) has no SQLAlchemy engine")
    engine: Engine = hook.get_sqlalchemy_engine()
    try:
        inspector = sa.inspect(engine)
        missing = [t for t in ("dag_run", "log", "hitl_detail") if not inspector.has_table(t)]
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise AirflowException(f"cannot reach the database of connection '{conn_id}': "
                               f"{type(exc.orig).__name__}") from None
    if missing:
        engine.dispose()
        raise AirflowFailException(f"connection '{conn_id}' is not Airflow's metadata database (no {missing})")
    return engine


def run_retention(conn_id: str, after_days: Any) -> dict[str, int]:
    """The DAG's task: one pass through the connection; counts in the log and in XCom, never values."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    try:
        days = int(after_days)
    except (TypeError, ValueError):
        raise AirflowFailException(f"after_days must be a whole number of days, not {after_days!r}") from None
    if days < 1:
        raise AirflowFailException("after_days must be at least 1")
    engine = metadata_engine(conn_id)
    try:
        result = remove_identities(engine, airflow_tables(), after_days=days)
    except sa.exc.DBAPIError as exc:  # down, busy, or a grant missing: the message names which
        raise AirflowException(f"metadata database error: {type(exc.orig).__name__}: "
                               f"{str(exc.orig).splitlines()[0][:200]}") from None
    finally:
        engine.dispose()
    log.info("Removed the identity of %d request(s) finished more than %d day(s) ago: %d audit-log row(s), "
             "%d human-in-the-loop row(s)", result.runs, days, result.log_rows, result.hitl_rows)
    return result.as_dict()


def build_retention_dag(config: PrivacyConfig) -> DAG:
    """A scheduled DAG of one task; the age is a param, so a run by hand may use another (never below 1)."""
    from airflow.sdk import DAG, Param, task

    settings = retention_settings(config)
    with DAG(
        dag_id=RETENTION_DAG_ID,
        schedule=settings.schedule,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["privacy"],
        default_args={"owner": "privacy", "retries": 1, "retry_delay": timedelta(minutes=5)},
        params={"after_days": Param(settings.after_days, type="integer", minimum=1, title="Retention (days)",
                                    description="Remove the identity of requests finished more than this many "
                                                "days ago from Airflow's metadata database.")},
        doc_md=f"Removes the subject's identity from Airflow's metadata database (`dag_run.conf`, `log.extra`, "
               f"`hitl_detail`) for privacy requests finished more than {settings.after_days} days ago, through "
               f"the connection `{settings.conn_id}`. Reports and ledgers in the request store are kept.",
    ) as dag:

        @task(task_id="remove_identities")
        def remove(params: dict[str, Any] | None = None) -> dict[str, int]:
            return run_retention(settings.conn_id, (params or {}).get("after_days"))

        remove()
    return dag


def main(argv: Sequence[str] | None = None) -> int:
    """The same pass where Airflow's own database settings are (scheduler host, cron job); prints counts."""
    parser = argparse.ArgumentParser(prog="python -m include.privacy_requests.retention", description=main.__doc__)
    parser.add_argument("--after-days", type=int, default=RetentionSettings.after_days)
    parser.add_argument("--dag-id", action="append", dest="dag_ids", help=f"default: {', '.join(REQUEST_DAG_IDS)}")
    args = parser.parse_args(argv)
    from airflow import settings

    if settings.engine is None:
        settings.configure_orm()
    result = remove_identities(settings.get_engine(), airflow_tables(), after_days=args.after_days,
                               dag_ids=args.dag_ids or REQUEST_DAG_IDS)
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
