"""The configuration as typed models: privacy.yml's settings (``Settings`` and its parts) and the loaded whole
(``PrivacyConfig``). Loading is ``loading.py``; the checks across files are ``checks.py``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from croniter import croniter
from fideslang.models import Dataset
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .drop_settings import DropSettings
from .graph import DatasetGraph, TraversalPlan
from .locations import check_inbox
from .policy import WEEK, Policy
from .saas_format import SaasConfig, SaasTarget

CONFIG_DIR_ENV = "PRIVACY_REQUESTS_CONFIG_DIR"
STORAGE_ENV = "PRIVACY_REQUESTS_STORAGE"
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "privacy"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Airflow's schedule presets, as cron: a digest schedule is given as either.
CRON_PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *",
                "@quarterly": "0 0 1 */3 *", "@yearly": "0 0 1 1 *"}


class EmailTarget(_Strict):
    """Where a vendor's erasure instructions go. Addresses are checked in validate_request.

    ``digest``: a schedule (cron or Airflow preset); requests then wait for the vendor's next digest email
    (privacy_vendor_digest) instead of sending one email each.
    """

    to: list[str] = Field(min_length=1)
    test_to: str | None = None
    vendor_name: str | None = None
    # Opt-in confirmation loop (vendor_confirmation.py): the vendor answers a signed link in the email, is
    # reminded every ``remind_every`` and the step fails as overdue after ``overdue_after`` without an answer.
    confirm: bool = False
    remind_every: timedelta = Field(default=WEEK, gt=timedelta(0))
    overdue_after: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))
    digest: str | None = None

    @field_validator("digest")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and value not in CRON_PRESETS and not croniter.is_valid(value):
            raise ValueError(f"'{value[:60]}' is neither a cron expression (five fields, e.g. '0 6 * * 1') nor "
                             f"an Airflow preset ({', '.join(CRON_PRESETS)})")
        return value

    @property
    def digest_cron(self) -> str | None:
        """The digest schedule as a cron expression (a preset expanded)."""
        return CRON_PRESETS.get(self.digest, self.digest) if self.digest else None

    @model_validator(mode="after")
    def _one_way_to_close(self) -> EmailTarget:
        if self.confirm and self.digest:  # a confirmation link belongs to one request's email, not a digest
            raise ValueError("confirm and digest cannot be combined: a vendor confirms each request's email, "
                             "and a digest lists many requests")
        return self

    @model_validator(mode="before")
    @classmethod
    def _single_to(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("to"), str):
            return {**data, "to": [data["to"]]}
        return data


class DatasetMapping(_Strict):
    """How a dataset is reached: an Airflow connection (SQL), a vendor's address (email), a person who
    looks it up and answers in the Airflow UI (manual: a paper archive, a system without an API), or a
    vendor's API described by a fides SaaS config (saas: saas_format.py)."""

    conn_id: str | None = None
    email: EmailTarget | None = None
    manual: bool = False
    saas: SaasTarget | None = None
    access: Literal["read", "write"] = "write"
    # The Airflow pool the dataset's access and erasure tasks run in: its slots cap the queries against this
    # database at once, across all requests and all workers.
    pool: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> DatasetMapping:
        if [self.conn_id is not None, self.email is not None, self.manual, self.saas is not None].count(True) != 1:
            raise ValueError("give exactly one of 'conn_id' (a SQL database), 'email' (a vendor), "
                             "'manual: true' (a person answers) or 'saas' (a vendor's API)")
        if self.pool is not None and self.conn_id is None and self.saas is None:
            raise ValueError("'pool' caps the queries against a database or an API: only a dataset with 'conn_id' "
                             "or 'saas' takes one")
        return self

    @property
    def kind(self) -> Literal["sql", "email", "manual", "saas"]:
        return "email" if self.email else "manual" if self.manual else "saas" if self.saas else "sql"


class RetrySettings(_Strict):
    """Retries for transient failures (database, SMTP, HTTP), with exponential backoff."""

    count: int = Field(default=3, ge=0)
    delay_seconds: float = Field(default=30, gt=0)
    max_delay_seconds: float = Field(default=600, gt=0)


class DeadlineAlertSettings(_Strict):
    """Notify, through any Airflow notifier, about requests still open close to their due date."""

    days_before_due: int = Field(default=5, ge=0)
    schedule: str = "@daily"
    notifier: str = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class RetentionSettings(_Strict):
    """How long Airflow's metadata database keeps a finished request's identity (privacy_request_retention)."""

    schedule: str = "@daily"
    after_days: int = Field(default=90, ge=1)
    conn_id: str = "privacy_metadata_db"


class BatchSettings(_Strict):
    """How the batch DAG queries: incoming values per statement (all subjects' values of a collection go in
    chunks of this size, so 10,000 subjects take a handful of statements per collection)."""

    chunk_size: int = Field(default=5000, ge=1, le=50_000)
    # Where subjects files (subjects_url) may be read from: local inbox folders and object-storage URL
    # prefixes. None configured: subjects_url is refused (batch/source.py).
    subjects_from: list[str] = Field(default_factory=list)
    # How much of a batch is read: subjects in all (inline or from a file), and of a subjects file the bytes
    # of one line (a longer line is rejected alone) and in all.
    max_subjects: int = Field(default=1_000_000, ge=1)
    max_line_bytes: int = Field(default=65_536, ge=256, le=16 * 1024 * 1024)
    max_file_bytes: int = Field(default=1 << 30, ge=1024)

    @field_validator("subjects_from")
    @classmethod
    def _inboxes(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            problem = check_inbox(entry)
            if problem:
                raise ValueError(f"{entry!r}: {problem}")
        return entries


class Settings(_Strict):
    organization: str
    storage: str
    # The Airflow connection with the object store's credentials and endpoint (an `aws` connection for
    # s3://); none: the filesystem's defaults (file://, or the environment's AWS credentials).
    storage_conn_id: str | None = Field(default=None, min_length=1)
    smtp_conn_id: str = "smtp_default"
    email_from: str | None = None  # sender of vendor emails; else the SMTP connection's from_email
    datasets: dict[str, DatasetMapping] = Field(default_factory=dict)
    data_categories: list[str] = Field(default_factory=list)
    retries: RetrySettings = Field(default_factory=RetrySettings)
    deadline_alert: DeadlineAlertSettings | None = None
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    drop: DropSettings | None = None  # California's DROP for data brokers (docs/drop.md)
    # How long an approval or a manual collection waits for its person before the step fails.
    wait_timeout: timedelta = Field(default=WEEK, gt=timedelta(0))


@dataclass
class PrivacyConfig:
    """Everything the DAG and its tasks need, loaded once per parse; immutable after loading."""

    folder: Path
    settings: Settings
    datasets: dict[str, Dataset]
    policies: dict[str, Policy]
    graph: DatasetGraph
    plan: TraversalPlan
    # SaaS datasets: their configs, and the fields each dataset file declares (before the configs' inputs).
    saas: dict[str, SaasConfig] = field(default_factory=dict)
    saas_declared: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict) -> PrivacyConfig:
        # Airflow deep-copies tasks (partial_subset, dag.test); the config is shared, never mutated.
        return self

    @property
    def storage(self) -> str:
        return os.environ.get(STORAGE_ENV) or expand_storage(self.settings.storage)

    def mapping(self, dataset: str) -> DatasetMapping:
        return self.settings.datasets[dataset]

    @cached_property
    def email_datasets(self) -> list[str]:
        return sorted(k for k in self.datasets if self.mapping(k).kind == "email")

    @cached_property
    def digest_datasets(self) -> list[str]:
        """The vendors that get a digest on a schedule instead of one email per request."""
        return [k for k in self.email_datasets if self.mapping(k).email.digest]  # type: ignore[union-attr]

    @cached_property
    def needs_approval(self) -> bool:
        """Whether any policy asks a person to approve each request (the DAG then has approve_request)."""
        return any(p.manual_approval for p in self.policies.values())


def expand_storage(url: str) -> str:
    """``$VARS`` expanded; ``$AIRFLOW_HOME`` falls back to Airflow's default home, which Airflow does not export."""
    env = {"AIRFLOW_HOME": str(Path("~/airflow").expanduser()), **os.environ}
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], m[0]), url)


def config_dir() -> Path:
    return Path(os.environ.get(CONFIG_DIR_ENV) or DEFAULT_CONFIG_DIR)
