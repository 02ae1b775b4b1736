"""The base of every checkpoint task: opens the request from the conf as sent, maps engine errors onto
Airflow's, and records failures in the request's store.

Input and configuration errors fail at once (no retry); transient errors are retried with backoff; a step
with nothing to do is skipped. Every failure is recorded in the store, so the report says which checkpoint
failed, when and why; except when the request id belongs to another run, whose store is never written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    DownstreamTasksSkipped,
    TaskAwaitingInput,
)
from airflow.sdk.log import mask_secret

from ...errors import ConfigError, DataSourceError, ForeignRequestError, RequestError, StepSkipped, TransientError
from ...model.graph import CollectionAddress
from ...model.settings import PrivacyConfig
from ...request.lifecycle import record_failure, record_result
from ...request.request import PrivacyRequest, check_owner, conf_identity, open_request
from ...store import layout
from ..hooks import store_key
from ..storage import storage_root

_PASS_THROUGH = (AirflowSkipException, AirflowFailException, DownstreamTasksSkipped, TaskAwaitingInput)


class PrivacyRequestOperator(BaseOperator):
    """A checkpoint of one privacy request. Subclasses implement ``run`` (and ``answered`` if they ask)."""

    template_fields: Sequence[str] = ()
    ui_color = "#e8f4fa"
    claims_request = False  # only validate_request makes a run the owner of its request id
    step: str = ""  # the engine's name of the step, for its results

    def __init__(self, *, privacy_config: PrivacyConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.privacy_config = privacy_config

    def execute(self, context: Context) -> Any:
        return self._guarded(context, lambda request: self.run(request, context))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Airflow resumes a task here when the person it asked (``hitl.asker``) has answered."""
        return self._guarded(context, lambda request: self.answered(request, context, event))

    def run(self, request: PrivacyRequest, context: Context) -> Any:
        raise NotImplementedError

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{self.task_id} does not ask anyone")

    def _guarded(self, context: Context, step: Callable[[PrivacyRequest], Any]) -> Any:
        request = self._open(context)
        try:
            if not self.claims_request:
                check_owner(request, context["run_id"])
            return step(request)
        except _PASS_THROUGH:
            raise
        except StepSkipped as exc:
            raise AirflowSkipException(str(exc)) from None
        except ForeignRequestError as exc:  # another run's request: nothing may be written into its store
            raise AirflowFailException(str(exc)) from None
        except (RequestError, ConfigError, DataSourceError) as exc:
            self._record_failure(request, context, exc, final=True)
            raise AirflowFailException(str(exc)) from None
        except TransientError as exc:
            self._record_failure(request, context, exc, final=self._last_try(context))
            raise AirflowException(f"{exc} (will retry)") from None
        except Exception as exc:  # unforeseen: recorded, then Airflow retries as for any task
            self._record_failure(request, context, exc, final=self._last_try(context))
            raise

    def _open(self, context: Context) -> PrivacyRequest:
        # The conf as the caller sent it, never merged with the Params' defaults: a request names its policy.
        conf = context["dag_run"].conf or {}
        for value in conf_identity(conf, self.privacy_config.graph.identity_keys).values():
            if value.strip():
                mask_secret(value.strip())
        try:
            request = open_request(self.privacy_config, conf, context["run_id"],
                                   storage_root(self.privacy_config), store_key())
            derived = request.store.get(layout.DERIVED_IDENTITY) or {}
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None
        for value in derived.values():
            mask_secret(value)
        return request

    def _last_try(self, context: Context) -> bool:
        """Whether Airflow will not retry this task after this try (try numbers start at 1)."""
        return context["ti"].try_number > (self.retries or 0)

    def _record_failure(self, request: PrivacyRequest, context: Context, exc: Exception, *, final: bool) -> None:
        try:
            record_failure(request, self.task_id, context["ti"].try_number, exc, final=final)
        except Exception:  # the store itself may be what failed; the task log still has the error
            self.log.warning("Could not record the failure of %s in the request store", self.task_id, exc_info=True)

    def _record_result(self, request: PrivacyRequest, context: Context, address: CollectionAddress | None = None,
                       **result: Any) -> dict[str, Any]:
        return record_result(request, self.step, address, context["ti"].try_number, **result)
