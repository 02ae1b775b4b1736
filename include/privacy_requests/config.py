"""The configuration folder (privacy.yml, datasets/*.yml, policies/*.yml) as typed, validated models.

Every problem is collected with its file and field, so one bad file does not hide the others, and the
whole list shows up as the DAG's import error in the Airflow UI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from croniter import croniter
from fideslang.default_taxonomy import DEFAULT_TAXONOMY
from fideslang.models import Dataset, DatasetField
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, Problem
from .graph import DatasetGraph, TraversalPlan, build_graph
from .masking import CONFIG_MODELS
from .policy import WEEK, Policy, category_matches

CONFIG_DIR_ENV = "PRIVACY_REQUESTS_CONFIG_DIR"
STORAGE_ENV = "PRIVACY_REQUESTS_STORAGE"
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[1] / "privacy"
ModelT = TypeVar("ModelT", bound=BaseModel)
_TASK_ID_PART = re.compile(r"^[A-Za-z0-9_-]+$")
# libyaml's safe loader when present: parsing hundreds of collections at every DAG parse must stay cheap.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    """How a dataset is reached: an Airflow connection (SQL), a vendor's address (email), or a person who
    looks it up and answers in the Airflow UI (manual: a paper archive, a system without an API)."""

    conn_id: str | None = None
    email: EmailTarget | None = None
    manual: bool = False
    access: Literal["read", "write"] = "write"
    # The Airflow pool the dataset's access and erasure tasks run in: its slots cap the queries against this
    # database at once, across all requests and all workers.
    pool: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> DatasetMapping:
        if [self.conn_id is not None, self.email is not None, self.manual].count(True) != 1:
            raise ValueError("give exactly one of 'conn_id' (a SQL database), 'email' (a vendor) or "
                             "'manual: true' (a person answers)")
        if self.pool is not None and self.conn_id is None:
            raise ValueError("'pool' caps the queries against a database: only a dataset with 'conn_id' takes one")
        return self

    @property
    def kind(self) -> Literal["sql", "email", "manual"]:
        return "email" if self.email else "manual" if self.manual else "sql"


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
        from .batch.source import check_inbox

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


def load_config(folder: Path | str | None = None) -> PrivacyConfig:
    """Load and validate the whole folder; raises ConfigError listing every problem found."""
    folder = Path(folder) if folder else config_dir()
    problems: list[Problem] = []
    settings_file = folder / "privacy.yml"
    settings = _load_model(settings_file, Settings, problems, root=None)
    datasets, files = _load_datasets(folder / "datasets", problems)
    policies = _load_policies(folder / "policies", problems)
    if settings is None:
        raise ConfigError(problems)

    known = {c.fides_key for c in DEFAULT_TAXONOMY.data_category} | set(settings.data_categories)
    _check_mappings(settings, datasets, files, _rel(settings_file, folder), problems)
    _check_dataset_categories(datasets, files, known, problems)
    _check_policies(policies, known, problems)
    graph, graph_problems = build_graph(datasets, files)
    problems += graph_problems
    plan, cycles = graph.plan()
    for cycle in cycles:
        problems.append(Problem("datasets", "fides_meta.after / references", cycle))
    if not graph_problems and not cycles:
        _check_plan(settings, plan, files, problems)
    _check_identity_names(graph, files, problems)
    if "$" in expand_storage(settings.storage):
        problems.append(Problem("privacy.yml", "storage", f"'{settings.storage}' names an environment variable "
                                "that is not set"))
    if not policies and not any(p.file.startswith("policies/") for p in problems):
        problems.append(Problem("policies", "", "no policy is defined (add policies/*.yml with a 'policy:' list)"))
    erase_cycle = graph.erasure_cycle()
    if erase_cycle:
        names = ", ".join(str(a) for a in erase_cycle)
        problems.append(Problem("datasets", "fides_meta.erase_after", f"cycle among: {names}"))
    if problems:
        raise ConfigError(problems)
    return PrivacyConfig(folder, settings, datasets, {p.key: p for p, _, _ in policies}, graph, plan)


def _rel(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, problems: list[Problem], folder: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except FileNotFoundError:
        problems.append(Problem(_rel(path, folder), "", "file not found"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(Problem(_rel(path, folder), where, f"invalid YAML: {getattr(exc, 'problem', exc)}"))
    return None


def _load_model(path: Path, model: type[BaseModel], problems: list[Problem], root: str | None) -> Any:
    folder = path.parent
    data = _read_yaml(path, problems, folder)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(_rel(path, folder), exc, root))
        return None


def _validation_problems(file: str, exc: ValidationError, prefix: str | None) -> list[Problem]:
    result = []
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        where = f"{prefix}{'.' if loc and not loc.startswith('[') else ''}{loc}" if prefix else loc
        result.append(Problem(file, where, err["msg"]))
    return result


def _yaml_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])


def _entries(folder: Path, top: str, model: type[ModelT], key_field: str,
             problems: list[Problem]) -> Iterator[tuple[ModelT, str, int]]:
    """Each valid entry of the top-level ``top`` list of every YAML file in a folder, with its file and
    index; invalid entries and keys defined twice become problems."""
    seen: dict[str, str] = {}
    for path in _yaml_files(folder):
        file = f"{folder.name}/{path.name}"
        data = _read_yaml(path, problems, folder.parent)
        if data is None:
            continue
        if not isinstance(data, dict) or not isinstance(data.get(top), list):
            problems.append(Problem(file, top, f"expected a top-level '{top}:' list"))
            continue
        for index, raw in enumerate(data[top]):
            try:
                entry = model.model_validate(raw)
            except ValidationError as exc:
                problems.extend(_validation_problems(file, exc, f"{top}[{index}]"))
                continue
            key = getattr(entry, key_field)
            if key in seen:
                problems.append(Problem(file, f"{top}[{index}].{key_field}",
                                        f"'{key}' is already defined in {seen[key]}"))
                continue
            seen[key] = file
            yield entry, file, index


def _load_datasets(folder: Path, problems: list[Problem]) -> tuple[dict[str, Dataset], dict[str, str]]:
    datasets: dict[str, Dataset] = {}
    files: dict[str, str] = {}
    for ds, file, index in _entries(folder, "dataset", Dataset, "fides_key", problems):
        for name in [ds.fides_key, *(c.name for c in ds.collections)]:
            if not _TASK_ID_PART.match(name):
                problems.append(Problem(file, f"dataset[{index}]",
                                        f"'{name}' may only use letters, digits, '_' and '-' "
                                        "(it becomes part of an Airflow task id)"))
        _check_unsupported(ds, file, problems)
        datasets[ds.fides_key] = ds
        files[ds.fides_key] = file
    return datasets, files


def _check_unsupported(ds: Dataset, file: str, problems: list[Problem]) -> None:
    """fideslang settings this engine does not apply: refused rather than silently ignored."""
    for coll in ds.collections:
        meta = coll.fides_meta
        where = f"{ds.fides_key}.{coll.name}.fides_meta"
        if meta and meta.skip_processing:
            problems.append(Problem(file, f"{where}.skip_processing", "not supported: remove the collection instead"))
        if meta and meta.masking_strategy_override:
            problems.append(Problem(file, f"{where}.masking_strategy_override",
                                    "not supported: masking follows the policy's erasure rules"))
        if meta and meta.partitioning:
            problems.append(Problem(file, f"{where}.partitioning", "not supported"))


def _load_policies(folder: Path, problems: list[Problem]) -> list[tuple[Policy, str, int]]:
    """Policies with the file and list index each came from, for error messages."""
    policies = list(_entries(folder, "policy", Policy, "key", problems))
    for policy, file, index in policies:
        _check_rules(policy, file, index, problems)
    return policies


def _check_rules(policy: Policy, file: str, index: int, problems: list[Problem]) -> None:
    for r_index, rule in enumerate(policy.rules):
        where = f"policy[{index}].rules[{r_index}]"
        spec = rule.masking_strategy
        if rule.action == "access" and spec is not None:
            problems.append(Problem(file, f"{where}.masking_strategy", "access rules do not mask"))
        if rule.action == "erasure":
            if spec is None:
                problems.append(Problem(file, f"{where}.masking_strategy", "erasure rules need a masking strategy"))
            elif spec.strategy not in CONFIG_MODELS:
                problems.append(Problem(file, f"{where}.masking_strategy.strategy",
                                        f"unknown masking strategy '{spec.strategy}'; "
                                        f"known: {', '.join(sorted(CONFIG_MODELS))}"))
            else:
                try:
                    CONFIG_MODELS[spec.strategy].model_validate(spec.configuration)
                except ValidationError as exc:
                    problems.extend(_validation_problems(file, exc, f"{where}.masking_strategy.configuration"))
    erasure_targets = [t for r in policy.erasure_rules for t in r.targets]
    for i, t in enumerate(erasure_targets):
        for j, other in enumerate(erasure_targets):
            if i != j and category_matches(other, t) and (t != other or i < j):
                problems.append(Problem(file, f"policy[{index}].rules",
                                        f"erasure targets '{t}' and '{other}' overlap; keep one"))


def _check_policies(policies: list[tuple[Policy, str, int]], known: set[str], problems: list[Problem]) -> None:
    for policy, file, index in policies:
        for r_index, rule in enumerate(policy.rules):
            for t_index, target in enumerate(rule.targets):
                if target not in known:
                    problems.append(Problem(file, f"policy[{index}].rules[{r_index}].targets[{t_index}]",
                                            f"unknown data category '{target}'"))


def _check_plan(settings: Settings, plan: TraversalPlan, files: dict[str, str], problems: list[Problem]) -> None:
    """What the static plan shows: collections no identity reaches, and SQL inputs on nested fields."""
    for address in plan.unreachable(_all_identities(plan)):
        problems.append(Problem(files[address.dataset], f"{address.dataset}.{address.collection}",
                                "no identity reaches this collection through references: every request would "
                                "fail (add an identity field or a reference)"))
    for address, inputs in plan.inputs.items():
        mapping = settings.datasets.get(address.dataset)
        for edge in inputs:
            if mapping and mapping.kind != "email" and "." in edge.target_field:
                problems.append(Problem(files[address.dataset],
                                        f"{address.dataset}.{address.collection}.{edge.target_field}",
                                        f"a nested field cannot be looked up in a {mapping.kind} dataset; reference "
                                        "or identify a top-level field"))


# The trigger conf's own keys: an identity type becomes a trigger form field of its name, so it may not be one.
CONF_KEYS = frozenset({"policy", "identity", "request_id", "dry_run", "after_dry_run"})


def _check_identity_names(graph: DatasetGraph, files: dict[str, str], problems: list[Problem]) -> None:
    for collection in graph.collections.values():
        for fld in collection.fields:
            if fld.identity in CONF_KEYS:
                problems.append(Problem(files[collection.address.dataset],
                                        f"{collection.address.dataset}.{collection.address.collection}.{fld.path}"
                                        ".fides_meta.identity", f"'{fld.identity}' is a key of the trigger conf: "
                                        "name the identity type otherwise"))


def _all_identities(plan: TraversalPlan) -> set[str]:
    return {i.source_field for inputs in plan.inputs.values() for i in inputs if i.source is None}


def _check_mappings(settings: Settings, datasets: dict[str, Dataset], files: dict[str, str],
                    settings_file: str, problems: list[Problem]) -> None:
    for key in sorted(set(datasets) - set(settings.datasets)):
        problems.append(Problem(files[key], key,
                                f"dataset has no mapping in privacy.yml (add 'datasets: {{{key}: {{conn_id: ...}}}}')"))
    for key in sorted(set(settings.datasets) - set(datasets)):
        problems.append(Problem(settings_file, f"datasets.{key}", "no dataset file defines this dataset"))


def _check_dataset_categories(datasets: dict[str, Dataset], files: dict[str, str], known: set[str],
                              problems: list[Problem]) -> None:
    for key, ds in datasets.items():
        for coll in ds.collections:
            for path, categories in _field_categories(coll.fields):
                for category in categories:
                    if category not in known:
                        problems.append(Problem(files[key], f"{key}.{coll.name}.{path}.data_categories",
                                                f"unknown data category '{category}' (declare organization "
                                                "categories under 'data_categories' in privacy.yml)"))


def _field_categories(fields: list[DatasetField] | None, prefix: str = "") -> Iterator[tuple[str, list[str]]]:
    for fld in fields or []:
        path = f"{prefix}{fld.name}"
        yield path, fld.data_categories or []
        yield from _field_categories(fld.fields, prefix=f"{path}.")


_cached: tuple[tuple[Any, ...], PrivacyConfig] | None = None


def current_config() -> PrivacyConfig:
    """The configuration folder's config, read again only when a file in it (or the folder setting) changed:
    for long-lived readers such as the UI plugin, which would otherwise parse every file on every page."""
    global _cached
    folder = config_dir()
    stamp = (str(folder), os.environ.get(STORAGE_ENV),
             tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*.y*ml"))))
    if _cached is None or _cached[0] != stamp:
        _cached = (stamp, load_config(folder))
    return _cached[1]
