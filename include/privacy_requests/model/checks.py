"""The checks of a loaded configuration folder: each finds problems (file, field, message) and adds them to the list,
so one bad file does not hide the others."""

from __future__ import annotations

from collections.abc import Iterator

from fideslang.models import Dataset, DatasetField
from pydantic import ValidationError

from ..errors import Problem
from .graph import DatasetGraph, TraversalPlan
from .masking import CONFIG_MODELS
from .policy import Policy, category_matches
from .settings import Settings


def validation_problems(file: str, exc: ValidationError, prefix: str | None) -> list[Problem]:
    result = []
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        where = f"{prefix}{'.' if loc and not loc.startswith('[') else ''}{loc}" if prefix else loc
        result.append(Problem(file, where, err["msg"]))
    return result


def check_unsupported(ds: Dataset, file: str, problems: list[Problem]) -> None:
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


def check_rules(policy: Policy, file: str, index: int, problems: list[Problem]) -> None:
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
                    problems.extend(validation_problems(file, exc, f"{where}.masking_strategy.configuration"))
    erasure_targets = [t for r in policy.erasure_rules for t in r.targets]
    for i, t in enumerate(erasure_targets):
        for j, other in enumerate(erasure_targets):
            if i != j and category_matches(other, t) and (t != other or i < j):
                problems.append(Problem(file, f"policy[{index}].rules",
                                        f"erasure targets '{t}' and '{other}' overlap; keep one"))


def check_policies(policies: list[tuple[Policy, str, int]], known: set[str], problems: list[Problem]) -> None:
    for policy, file, index in policies:
        for r_index, rule in enumerate(policy.rules):
            for t_index, target in enumerate(rule.targets):
                if target not in known:
                    problems.append(Problem(file, f"policy[{index}].rules[{r_index}].targets[{t_index}]",
                                            f"unknown data category '{target}'"))


def check_plan(settings: Settings, plan: TraversalPlan, files: dict[str, str], problems: list[Problem]) -> None:
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


def check_identity_names(graph: DatasetGraph, files: dict[str, str], problems: list[Problem]) -> None:
    for collection in graph.collections.values():
        for fld in collection.fields:
            if fld.identity in CONF_KEYS:
                problems.append(Problem(files[collection.address.dataset],
                                        f"{collection.address.dataset}.{collection.address.collection}.{fld.path}"
                                        ".fides_meta.identity", f"'{fld.identity}' is a key of the trigger conf: "
                                        "name the identity type otherwise"))


def _all_identities(plan: TraversalPlan) -> set[str]:
    return {i.source_field for inputs in plan.inputs.values() for i in inputs if i.source is None}


def check_mappings(settings: Settings, datasets: dict[str, Dataset], files: dict[str, str],
                    settings_file: str, problems: list[Problem]) -> None:
    for key in sorted(set(datasets) - set(settings.datasets)):
        problems.append(Problem(files[key], key,
                                f"dataset has no mapping in privacy.yml (add 'datasets: {{{key}: {{conn_id: ...}}}}')"))
    for key in sorted(set(settings.datasets) - set(datasets)):
        problems.append(Problem(settings_file, f"datasets.{key}", "no dataset file defines this dataset"))


def check_dataset_categories(datasets: dict[str, Dataset], files: dict[str, str], known: set[str],
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
