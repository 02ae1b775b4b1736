"""The runs the Privacy requests pages list, read from Airflow's metadata DB: only the columns the pages show.

A run's conf is never loaded whole: a batch of 100,000 inline subjects has a conf of megabytes, and loading
it (once per run, and again once per task row through the task instance's joined run) made the overview take
seconds. The pages need a few of its fields (the request or batch id, the policy, the identity of a single
request): the database extracts those, and the task rows are read as plain columns, without their run.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..deliverables.overview import RunInfo, TaskState

REQUEST_FIELDS = ("request_id", "policy", "identity")  # what a single request's row shows of its conf
BATCH_FIELDS = ("batch_id", "policy")  # what a batch's row shows: never its subjects


def read_runs(dag_id: str, conf_fields: Iterable[str], *, run_id: str | None = None,
              limit: int = 500) -> list[RunInfo]:
    """``dag_id``'s runs (or the one ``run_id``) with their task states, newest first; each RunInfo's conf holds
    only ``conf_fields`` (those the run's conf has)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    fields = list(dict.fromkeys(conf_fields))
    query = select(DagRun.run_id, DagRun.state, DagRun.queued_at, DagRun.start_date, DagRun.run_after,
                   *(DagRun.conf[name].as_json().label(f"conf_{index}") for index, name in enumerate(fields)))
    query = query.where(DagRun.dag_id == dag_id)
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    query = query.order_by(DagRun.id.desc()).limit(limit)
    with create_session() as session:
        runs = session.execute(query).all()
        tasks: dict[str, list[TaskState]] = {}
        if runs:
            tis = session.execute(
                select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state, TaskInstance.try_number,
                       TaskInstance.start_date, TaskInstance.end_date)
                .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id.in_([r.run_id for r in runs])))
            for ti in tis:
                tasks.setdefault(ti.run_id, []).append(
                    TaskState(ti.task_id, ti.state, ti.try_number, ti.start_date, ti.end_date))
    result = []
    for run in runs:
        conf = {name: run[5 + index] for index, name in enumerate(fields) if run[5 + index] is not None}
        result.append(RunInfo(run.run_id, conf, str(run.state), run.queued_at or run.start_date or run.run_after,
                              tasks.get(run.run_id, [])))
    return result
