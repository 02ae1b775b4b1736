"""The checkpoints of a batch (privacy_request_batch): the same task ids as a single request's, each working
set-based for every subject. The base opens the batch instead of one request; the rest (fail or retry,
skipped steps, the owner check) is the single request's (base.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow.sdk import Context, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException

from ...batch.collections import access_batch_collection, erase_batch_collection
from ...batch.outputs import finish_batch, record_batch_failure, send_batch_email, write_access_packages
from ...batch.subjects import Batch, batch_subjects_source, open_batch, start_batch
from ...errors import RequestError, StepSkipped
from ...model.graph import CollectionAddress
from ..hitl import asker
from ..hooks import connectors, erasure_problems, smtp_send, smtp_sender, store_key
from ..storage import storage_root
from .base import PrivacyRequestOperator


class BatchOperator(PrivacyRequestOperator):
    """A checkpoint of a batch: ``run`` gets the Batch. Identity values are not registered with the secret
    masker (thousands of them would slow every log line); nothing here logs one."""

    def _open(self, context: Context) -> Batch:  # type: ignore[override]
        try:
            return open_batch(self.privacy_config, context["dag_run"].conf or {}, context["run_id"],
                              storage_root(self.privacy_config), store_key())
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None

    def _record_failure(self, request: Any, context: Context, exc: Exception, *, final: bool) -> None:
        try:
            record_batch_failure(request, self.task_id, context["ti"].try_number, exc, final=final)
        except Exception:  # the store itself may be what failed; the task log still has the error
            self.log.warning("Could not record the failure of %s in the batch store", self.task_id, exc_info=True)


class BatchValidateOperator(BatchOperator):
    """Claims the batch id, checks the batch, then each subject alone (a bad subject is rejected alone)."""

    claims_request = True

    def run(self, batch: Batch, context: Context) -> dict[str, Any]:  # type: ignore[override]
        counts = start_batch(batch, context["run_id"], context["dag_run"].run_after.isoformat(),
                             _subjects(batch), lambda: erasure_problems(self.privacy_config, batch.policy))
        self.log.info("Batch %s valid: policy %s, %d subject(s) accepted, %d rejected", batch.batch_id,
                      batch.conf.policy, counts["subjects"], counts["rejected"])
        return counts


def _subjects(batch: Batch) -> Iterable[Any]:
    """The conf's subjects, or the subjects file (checked against privacy.yml's inboxes before it is opened;
    an object-storage URL opened through ObjectStoragePath, read in blocks)."""
    return batch_subjects_source(batch, lambda url: ObjectStoragePath(url).open("rb"))


class BatchSkippedOperator(BatchOperator):
    """approve_request and the webhooks: validate_request refuses policies that need them in a batch."""

    def __init__(self, *, step: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step

    def run(self, batch: Batch, context: Context) -> Any:  # type: ignore[override]
        raise StepSkipped("batches run without manual approval and webhooks (validate_request refuses such "
                          "policies)")


class BatchCollectionOperator(BatchOperator):
    def __init__(self, *, address: CollectionAddress, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address


class BatchAccessCollectionOperator(BatchCollectionOperator):
    """Finds every subject's records in one collection, one query per chunk of values."""

    def run(self, batch: Batch, context: Context) -> dict[str, int]:  # type: ignore[override]
        outcome = access_batch_collection(batch, self.address, connectors(self.privacy_config, asker(context)),
                                          context["ti"].try_number)
        return {"rows": outcome.rows, "statements": outcome.statements}


class BatchErasureCollectionOperator(BatchCollectionOperator):
    """Masks every row found for any subject once, or prepares each subject's vendor instruction."""

    def run(self, batch: Batch, context: Context) -> dict[str, Any]:  # type: ignore[override]
        outcome = erase_batch_collection(batch, self.address, connectors(self.privacy_config, asker(context)),
                                         context["ti"].try_number)
        return {"masked": outcome.masked, "statements": outcome.statements}


class BatchUploadAccessPackageOperator(BatchOperator):
    """Writes each subject's ``access_package.json``."""

    def run(self, batch: Batch, context: Context) -> dict[str, int]:  # type: ignore[override]
        return write_access_packages(batch)


class BatchEmailSendOperator(BatchOperator):
    """Sends the vendor one email listing every subject's instructions, exactly once."""

    def __init__(self, *, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def run(self, batch: Batch, context: Context) -> dict[str, Any]:  # type: ignore[override]
        config = self.privacy_config
        entry = send_batch_email(batch, self.dataset, sender=lambda: smtp_sender(config),
                                 send=smtp_send(config.settings.smtp_conn_id), try_number=context["ti"].try_number)
        return {"message_id": entry["message_id"], "subjects": entry.get("subjects")}


class BatchFinalizeOperator(BatchOperator):
    """Writes every subject's report.json and the batch's; deletes the intermediate rows."""

    def run(self, batch: Batch, context: Context) -> dict[str, Any]:  # type: ignore[override]
        return finish_batch(batch)
