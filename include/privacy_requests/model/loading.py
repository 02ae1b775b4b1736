"""Loading the configuration folder (privacy.yml, datasets/*.yml, policies/*.yml) into a ``PrivacyConfig``.

Every problem is collected with its file and field and the whole list raised as one ``ConfigError``: it shows
up as the DAG's import error in the Airflow UI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from fideslang.default_taxonomy import DEFAULT_TAXONOMY
from fideslang.models import Dataset
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, Problem
from .checks import (
    check_dataset_categories,
    check_identity_names,
    check_mappings,
    check_plan,
    check_policies,
    check_rules,
    check_unsupported,
    validation_problems,
)
from .graph import build_graph
from .policy import Policy
from .saas_loading import load_saas
from .settings import STORAGE_ENV, PrivacyConfig, Settings, config_dir, expand_storage

ModelT = TypeVar("ModelT", bound=BaseModel)
_TASK_ID_PART = re.compile(r"^[A-Za-z0-9_-]+$")
# libyaml's safe loader when present: parsing hundreds of collections at every DAG parse must stay cheap.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    check_mappings(settings, datasets, files, _rel(settings_file, folder), problems)
    saas, datasets, saas_declared = load_saas(folder, {k: m.saas for k, m in settings.datasets.items() if m.saas},
                                              datasets, files, problems)
    check_dataset_categories(datasets, files, known, problems)
    check_policies(policies, known, problems)
    graph, graph_problems = build_graph(datasets, files)
    problems += graph_problems
    plan, cycles = graph.plan()
    for cycle in cycles:
        problems.append(Problem("datasets", "fides_meta.after / references", cycle))
    if not graph_problems and not cycles:
        check_plan(settings, plan, files, problems)
    check_identity_names(graph, files, problems)
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
    return PrivacyConfig(folder, settings, datasets, {p.key: p for p, _, _ in policies}, graph, plan, saas,
                         saas_declared)


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
        problems.extend(validation_problems(_rel(path, folder), exc, root))
        return None


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
                problems.extend(validation_problems(file, exc, f"{top}[{index}]"))
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
        check_unsupported(ds, file, problems)
        datasets[ds.fides_key] = ds
        files[ds.fides_key] = file
    return datasets, files


def _load_policies(folder: Path, problems: list[Problem]) -> list[tuple[Policy, str, int]]:
    """Policies with the file and list index each came from, for error messages."""
    policies = list(_entries(folder, "policy", Policy, "key", problems))
    for policy, file, index in policies:
        check_rules(policy, file, index, problems)
    return policies


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
