"""Steps that wait for a person (or a remote system acting for one): Airflow's human-in-the-loop.

A waiting task parks in the ``awaiting_input`` state and holds no worker slot; it shows up under
"Required actions" in the Airflow UI, and is answered there or with the REST call
``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails``.
The answer resumes the same task in ``execute_complete``; no answer within the timeout fails the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from airflow.sdk import Context, Param
from airflow.sdk.exceptions import TaskAwaitingInput
from airflow.sdk.execution_time.hitl import upsert_hitl_detail

from .errors import RequestError

RESUME_PATH = "/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"


def ask(context: Context, *, subject: str, body: str, options: list[str], timeout: timedelta,
        params: dict[str, Param] | None = None) -> NoReturn:
    """Park the task until a person answers; Airflow then calls the operator's ``execute_complete``.

    ``subject`` and ``body`` are stored in Airflow's metadata DB: keep personal data out of them, except what
    the person must see to answer (a manual collection's values to look up).
    """
    upsert_hitl_detail(ti_id=context["task_instance"].id, options=options, subject=subject, body=body,
                       defaults=None, multiple=False,
                       params={name: param.serialize() for name, param in (params or {}).items()})
    raise TaskAwaitingInput(method_name="execute_complete", timeout=timeout)


def resume_path(context: Context) -> str:
    """Where the answer to this task goes (REST API path on the Airflow API server)."""
    ti = context["task_instance"]
    return RESUME_PATH.format(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id)


@dataclass(frozen=True)
class Answer:
    """What the person chose and entered, and who they are (an Airflow user, not the data subject)."""

    option: str
    values: dict[str, Any]
    by: str

    @classmethod
    def of(cls, event: dict[str, Any], timed_out: str) -> Answer:
        """The answer in a resume event; no answer in time raises ``timed_out`` as a clear, final error."""
        if event.get("error") or not event.get("chosen_options"):
            raise RequestError(timed_out)
        user = event.get("responded_by_user") or {}
        return cls(option=event["chosen_options"][0], values=dict(event.get("params_input") or {}),
                   by=str(user.get("name") or user.get("id") or "unknown"))


def duration(delta: timedelta) -> str:
    """``7 day(s)`` or ``90 s``, for messages."""
    if delta.days and not delta.seconds:
        return f"{delta.days} day(s)"
    return f"{int(delta.total_seconds())} s"
