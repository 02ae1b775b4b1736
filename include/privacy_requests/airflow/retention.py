"""Retention in Airflow: the ``privacy_request_retention`` DAG and the same pass as a command.

Where it runs: Airflow 3 gives task code no metadata DB session (the Task SDK swaps ``settings.Session`` for
one that raises and points ``sql_alchemy_conn`` at ``airflow-db-not-allowed:///``, also for subprocesses, so
``airflow db ...`` in a BashOperator fails too), and no REST endpoint edits a run's conf, an audit-log row
or an answered question. So the engine's scrub (``..retention``) runs either

- in the DAG's task, through an Airflow connection to the metadata database that the deployment creates on
  purpose (``privacy_metadata_db``, ideally a database role allowed to read and update only those columns), or
- as a command where Airflow's own database settings are (the scheduler's host, a cron job):
  ``python -m include.privacy_requests.airflow.retention --after-days 90``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from airflow.sdk import DAG, BaseHook, Param, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException
from sqlalchemy.engine import Engine

from ..model.loading import load_config
from ..model.settings import PrivacyConfig, RetentionSettings
from ..request.retention import REQUEST_DAG_IDS, MetadataTables, remove_identities
from .constants import RETENTION_DAG_ID

log = logging.getLogger(__name__)


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
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise AirflowFailException(
            f"connection '{conn_id}' does not exist: create it for Airflow's metadata database (README, 'What "
            "Airflow keeps'), or run `python -m include.privacy_requests.airflow.retention` where Airflow's "
            "database "
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


def run_retention(conn_id: str, after_days: Any, identity_types: Collection[str] = ()) -> dict[str, int]:
    """The DAG's task: one pass through the connection; counts in the log and in XCom, never values."""
    try:
        days = int(after_days)
    except (TypeError, ValueError):
        raise AirflowFailException(f"after_days must be a whole number of days, not {after_days!r}") from None
    if days < 1:
        raise AirflowFailException("after_days must be at least 1")
    engine = metadata_engine(conn_id)
    try:
        result = remove_identities(engine, airflow_tables(), after_days=days, identity_types=identity_types)
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
    settings = config.settings.retention
    identity_types = sorted(config.graph.identity_keys)  # the trigger form's identity fields
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
               f"the connection `{settings.conn_id}`; deletes each access package (`access_package.*`, the "
               "subject's data in clear) once its policy's `access_package.keep_days` have passed. Reports and "
               "ledgers in the request store are kept.",
    ) as dag:

        @task(task_id="remove_identities")
        def remove(params: dict[str, Any] | None = None) -> dict[str, int]:
            return run_retention(settings.conn_id, (params or {}).get("after_days"), identity_types)

        @task(task_id="expire_access_packages")
        def expire() -> dict[str, int]:
            return run_package_expiry(config)

        remove()
        expire()
    return dag


def run_package_expiry(config: PrivacyConfig) -> dict[str, int]:
    """The DAG's second task: delete the access packages past their policy's ``keep_days`` (package/expiry.py)."""
    from ..deliverables.package.expiry import expire_access_packages
    from .hooks import store_key
    from .storage import storage_root

    result = expire_access_packages(config, storage_root(config), store_key())
    if result.errors:  # the others were expired; this one must be looked at
        raise AirflowException(f"{len(result.errors)} request folder(s) could not be read to expire their access "
                               f"package (see the log); {result.files} file(s) of {result.requests} request(s) "
                               "were deleted")
    return result.as_dict()


def main(argv: Sequence[str] | None = None) -> int:
    """The same pass where Airflow's own database settings are (scheduler host, cron job); prints counts."""
    parser = argparse.ArgumentParser(prog="python -m include.privacy_requests.airflow.retention",
                                     description=main.__doc__)
    parser.add_argument("--after-days", type=int, default=RetentionSettings().after_days)
    parser.add_argument("--dag-id", action="append", dest="dag_ids", help=f"default: {', '.join(REQUEST_DAG_IDS)}")
    args = parser.parse_args(argv)
    from airflow import settings

    if settings.engine is None:
        settings.configure_orm()
    result = remove_identities(settings.get_engine(), airflow_tables(), after_days=args.after_days,
                               dag_ids=args.dag_ids or REQUEST_DAG_IDS,
                               identity_types=load_config().graph.identity_keys)
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
