"""What the engine may ask Airflow about other runs: whether a run has ended. Handed to the engine as a plain
callable (the engine stays Airflow-free), so a claim or an access request whose run died outside the engine
(a worker killed for good, a heartbeat timeout) stops holding others up."""

from __future__ import annotations

import logging

from ..request.request import RunEnded

log = logging.getLogger(__name__)

# How long an erasure step waits before it looks again for the earlier access requests it waits for; it holds
# no worker slot meanwhile (the task is rescheduled).
WAIT_POKE_SECONDS = 15.0
_ENDED = ["success", "failed"]


def run_ended(dag_id: str) -> RunEnded:
    """Whether a run of ``dag_id`` has ended: success or failed, or no longer exists (deleted). Asked through
    the Task SDK by query parameters, never with the run id in a URL path; any error means "not known to have
    ended", so a run is never taken for over while Airflow cannot answer."""

    def ended(run_id: str) -> bool:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        try:
            if RuntimeTaskInstance.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=_ENDED):
                return True
            return RuntimeTaskInstance.get_dr_count(dag_id=dag_id, run_ids=[run_id]) == 0
        except Exception:  # Airflow could not tell: the run counts as still at work
            log.warning("Could not ask Airflow whether run %r of %s has ended", run_id, dag_id, exc_info=True)
            return False

    return ended
