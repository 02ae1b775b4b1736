"""Steps that wait for a person (or a remote system acting for one): Airflow's human-in-the-loop.

A waiting task parks in the ``awaiting_input`` state and holds no worker slot; it shows up under
"Required actions" in the Airflow UI, and is answered there or with the REST call
``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails``.
The answer resumes the same task in ``execute_complete``; no answer within the timeout fails the step.
"""

from __future__ import annotations

from typing import NoReturn

from airflow.sdk import Context, Param, conf
from airflow.sdk.exceptions import TaskAwaitingInput
from airflow.sdk.execution_time.hitl import upsert_hitl_detail

from ..request.asking import Ask, Question

RESUME_PATH = "/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
# Whom a question goes to: ``asker`` assigns no user, so Airflow lets every user allowed to answer the DAG's
# required actions (the auth manager's PUT permission on the DAG's HITL details) answer it.
ASKED_OF = ("any Airflow user allowed to answer this DAG's required actions (Browse, Required actions; "
            "no user assigned)")


def asker(context: Context) -> Ask:
    """The engine's ``ask`` for this task: park it until a person answers the question."""

    def ask(question: Question) -> NoReturn:
        params = {name: Param(spec["default"], **{k: v for k, v in spec.items() if k != "default"}).serialize()
                  for name, spec in question.form.items()}
        upsert_hitl_detail(ti_id=context["task_instance"].id, options=question.options, subject=question.subject,
                           body=question.body, defaults=None, multiple=False, params=params)
        raise TaskAwaitingInput(method_name="execute_complete", timeout=question.timeout)

    return ask


def resume_url(context: Context) -> str:
    """Where the answer to this task goes: an absolute URL on this Airflow's API server when ``[api] base_url``
    is set, else the REST path."""
    ti = context["task_instance"]
    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return base + RESUME_PATH.format(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id)
