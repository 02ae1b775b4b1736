"""The tasks of ``privacy_drop``: ``drop_receive`` (the download, from the folder or the DROP API),
``drop_match`` (hashes, statuses, opt-outs), the batch checkpoints that erase the matched consumers (skipped
when there is none), and ``drop_respond`` (response files, uploads, suppression list, report, certificate)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context, ObjectStoragePath
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from ...batch.subjects import Batch, start_batch
from ...drop.respond import respond
from ...drop.run import DropRun, drop_batch, drop_subjects, has_subjects, match, receive
from ...errors import ConfigError, DataSourceError, RequestError, TransientError
from ...model.settings import PrivacyConfig
from ...store import layout
from ..hooks import drop_api, erasure_problems, sql_engine, store_key
from ..storage import storage_root
from .batch import (
    BatchAccessCollectionOperator,
    BatchEmailSendOperator,
    BatchErasureCollectionOperator,
    BatchFinalizeOperator,
    BatchSkippedOperator,
    BatchUploadAccessPackageOperator,
    BatchValidateOperator,
)


def _drop_run(config: PrivacyConfig, context: Context) -> DropRun:
    return DropRun(config, context["run_id"], storage_root(config), store_key())


class DropOperator(BaseOperator):
    """A DROP step: engine errors mapped onto Airflow's (bad input or config fails at once; a transient
    failure is retried with backoff)."""

    ui_color = "#fdf1e0"

    def __init__(self, *, privacy_config: PrivacyConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.privacy_config = privacy_config

    def execute(self, context: Context) -> Any:
        try:
            return self.run(_drop_run(self.privacy_config, context), context)
        except (RequestError, ConfigError, DataSourceError) as exc:
            raise AirflowFailException(str(exc)) from None
        except TransientError as exc:
            raise AirflowException(f"{exc} (will retry)") from None

    def run(self, run: DropRun, context: Context) -> Any:
        raise NotImplementedError


class DropReceiveOperator(DropOperator):
    """Takes the newest ZIP not yet processed from ``drop.folder`` (or ``zip_url`` of the conf), else asks the
    DROP API; checks it whole and keeps its work items."""

    def run(self, run: DropRun, context: Context) -> dict[str, Any]:
        conf = context["dag_run"].conf or {}
        settings = run.settings
        state = run.suppression
        received = context["dag_run"].run_after.isoformat()
        done = run.store.get(layout.DROP_DOWNLOAD)
        if done:  # a clear: the download was received already
            return receive(run, None, received)
        source, data = _download(conf, settings, state)
        counts = receive(run, data, received)
        if source:
            state.create(f"processed/{source.rsplit('/', 1)[-1]}.json", {"run_id": run.run_id})
        self.log.info("DROP download %s: %s", source or "(API)" if data else "none (no new data)", counts)
        return counts


def _download(conf: dict[str, Any], settings: Any, state: Any) -> tuple[str | None, bytes | None]:
    if conf.get("zip_url"):
        return conf["zip_url"], _read(ObjectStoragePath(conf["zip_url"]))
    if settings.folder and conf.get("source") != "api":
        folder = ObjectStoragePath(settings.folder)
        try:
            names = sorted(p for p in folder.iterdir() if p.name.endswith(".zip")) if folder.exists() else []
        except OSError as exc:
            raise TransientError(f"the DROP folder cannot be listed: {type(exc).__name__}") from None
        fresh = [p for p in names if not state.exists(f"processed/{p.name}.json")]
        if fresh:
            return str(fresh[-1]), _read(fresh[-1])
    if settings.api_conn_id and conf.get("source") != "folder":
        return None, drop_api(settings).download()
    return None, None


def _read(path: ObjectStoragePath) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read()
    except (OSError, ValueError) as exc:
        raise RequestError(f"the DROP download cannot be read: {type(exc).__name__}") from None


class DropMatchOperator(DropOperator):
    def run(self, run: DropRun, context: Context) -> dict[str, Any]:
        config = self.privacy_config
        return match(run, lambda dataset: sql_engine(config.mapping(dataset).conn_id or ""))


class DropRespondOperator(DropOperator):
    def run(self, run: DropRun, context: Context) -> dict[str, Any]:
        upload = None
        if run.settings.upload == "api":
            api = drop_api(run.settings)

            def upload(files: dict[str, bytes], amend: bool) -> dict[str, Any]:
                return api.upload(files, amend=amend)

        return respond(run, upload)


class _DropBatch:
    """A batch checkpoint of privacy_drop: its batch is the run's (drop_batch), skipped without consumers."""

    privacy_config: PrivacyConfig

    def _open(self, context: Context) -> Batch:
        try:
            return drop_batch(_drop_run(self.privacy_config, context))
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None

    def execute(self, context: Context) -> Any:
        if not has_subjects(_drop_run(self.privacy_config, context)):
            raise AirflowSkipException("no consumer matched: nothing to erase")
        return super().execute(context)  # type: ignore[misc]


class DropValidateOperator(_DropBatch, BatchValidateOperator):
    def run(self, batch: Batch, context: Context) -> dict[str, Any]:  # type: ignore[override]
        run = _drop_run(self.privacy_config, context)
        return start_batch(batch, context["run_id"], context["dag_run"].run_after.isoformat(), drop_subjects(run),
                           lambda: erasure_problems(self.privacy_config, batch.policy))


class DropSkippedOperator(_DropBatch, BatchSkippedOperator):
    pass


class DropAccessOperator(_DropBatch, BatchAccessCollectionOperator):
    pass


class DropUploadOperator(_DropBatch, BatchUploadAccessPackageOperator):
    pass


class DropErasureOperator(_DropBatch, BatchErasureCollectionOperator):
    pass


class DropEmailSendOperator(_DropBatch, BatchEmailSendOperator):
    pass


class DropFinalizeOperator(_DropBatch, BatchFinalizeOperator):
    pass
