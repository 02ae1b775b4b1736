"""Loading SaaS configs: each SaaS dataset's ``saas_config:`` file, validated (every problem names the file
and the field), and the merge of its inputs into the dataset's graph: as in fides, the ``param_values`` of a
collection's read requests that come from an identity or a dataset reference become fields of the collection
with that identity or reference, so the graph reaches a SaaS collection from an identity, from a SQL
collection's field, or from another SaaS collection."""

from __future__ import annotations

from pathlib import Path

import yaml
from fideslang.models import CollectionMeta, Dataset, DatasetField, FidesDatasetReference, FidesMeta
from pydantic import ValidationError

from ..errors import Problem
from .saas_format import BUILTINS, INSTANCE_KEY, OAuth2ClientCredentials, SaasConfig, SaasRequest, SaasTarget

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_saas_config(folder: Path, target: SaasTarget, dataset_key: str,
                     problems: list[Problem]) -> SaasConfig | None:
    """The config file of one dataset, ``<instance_fides_key>`` replaced by the dataset's key, validated;
    every problem becomes a Problem naming the file and the field."""
    path = folder / target.config
    file = target.config
    try:
        text = path.read_text()
    except OSError:
        problems.append(Problem(file, "", f"SaaS config file not found (privacy.yml: datasets.{dataset_key}.saas."
                                          "config)"))
        return None
    try:
        data = yaml.load(text.replace(INSTANCE_KEY, dataset_key), Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(Problem(file, where, f"invalid YAML: {getattr(exc, 'problem', exc)}"))
        return None
    if not isinstance(data, dict) or not isinstance(data.get("saas_config"), dict):
        problems.append(Problem(file, "saas_config", "expected a top-level 'saas_config:' mapping"))
        return None
    try:
        config = SaasConfig.model_validate(data["saas_config"])
    except ValidationError as exc:
        for err in exc.errors():
            loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
            problems.append(Problem(file, f"saas_config{loc}", err["msg"].removeprefix("Value error, ")))
        return None
    before = len(problems)
    if config.fides_key != dataset_key:
        problems.append(Problem(file, "saas_config.fides_key", f"'{config.fides_key}' is not the dataset it serves "
                                f"('{dataset_key}'); use {INSTANCE_KEY} or the dataset's key"))
    check_placeholders(config, file, problems)
    return config if len(problems) == before else None


def check_placeholders(config: SaasConfig, file: str, problems: list[Problem]) -> None:
    """Every ``<name>`` of a request is a param value, a connector param or one the engine fills; a param value
    names a connector param that exists; update and delete references point into their own collection."""
    params = config.param_names

    def check(request: SaasRequest, where: str, own: str | None) -> None:
        names = {p.name for p in request.param_values}
        for index, pv in enumerate(request.param_values):
            if pv.connector_param and pv.connector_param not in params:
                problems.append(Problem(file, f"{where}.param_values[{index}].connector_param",
                                        f"'{pv.connector_param}' is not one of the connector_params"))
            if own and pv.references and pv.references[0].field.split(".")[0] != own:
                problems.append(Problem(file, f"{where}.param_values[{index}].references",
                                        f"an update or delete takes its values from the record being erased: "
                                        f"reference a field of '{own}'"))
        for part, name in request.placeholders():
            key = name.removesuffix("?").split(".")[0]
            if key not in names | params | BUILTINS:
                problems.append(Problem(file, f"{where}.{part}", f"placeholder <{name}> is neither a param_value, a "
                                        "connector_param nor one the engine fills "
                                        f"({', '.join(sorted(BUILTINS))})"))

    for e_index, endpoint in enumerate(config.endpoints):
        base = f"saas_config.endpoints[{e_index}].requests"
        reads = endpoint.requests.reads
        for r_index, read in enumerate(reads):
            check(read, f"{base}.read[{r_index}]", None)
        for action in ("update", "delete"):
            request = getattr(endpoint.requests, action)
            if request:
                check(request, f"{base}.{action}", endpoint.name)
    auth = config.client_config.authentication
    if isinstance(auth, OAuth2ClientCredentials):
        check(auth.configuration.token_request, "saas_config.client_config.authentication.configuration."
              "token_request", None)


def merge_into_dataset(config: SaasConfig, dataset: Dataset, file: str, config_file: str,
                       problems: list[Problem]) -> Dataset:
    """The dataset with the config's graph inputs: each read param value from an identity or a reference
    becomes (or joins) a field of its collection; ``after``/``erase_after`` join the collection's own."""
    collections = {c.name: c for c in dataset.collections}
    for index, endpoint in enumerate(config.endpoints):
        if endpoint.name not in collections:
            problems.append(Problem(config_file, f"saas_config.endpoints[{index}].name",
                                    f"'{endpoint.name}' is not a collection of dataset '{dataset.fides_key}' "
                                    f"({file})"))
    for name in collections:
        if name not in {e.name for e in config.endpoints}:
            problems.append(Problem(file, f"{dataset.fides_key}.{name}", f"no endpoint of the SaaS config "
                                    f"{config_file} serves this collection"))
    new_collections = []
    for coll in dataset.collections:
        if coll.name not in {e.name for e in config.endpoints}:
            new_collections.append(coll)
            continue
        endpoint = config.endpoint(coll.name)
        fields = {f.name: f for f in coll.fields}
        for read in endpoint.requests.reads:
            for pv in read.param_values:
                if not pv.is_input:
                    continue
                fld = fields.get(pv.name) or DatasetField(name=pv.name)
                meta = fld.fides_meta.model_copy() if fld.fides_meta else FidesMeta()
                if pv.identity:
                    meta.identity = pv.identity
                else:
                    refs = list(meta.references or [])
                    for ref in pv.references or []:
                        made = FidesDatasetReference(dataset=ref.dataset, field=ref.field, direction="from")
                        if made not in refs:
                            refs.append(made)
                    meta.references = refs
                fields[pv.name] = fld.model_copy(update={"fides_meta": meta})
        meta = coll.fides_meta.model_copy() if coll.fides_meta else CollectionMeta()
        if endpoint.after:
            meta.after = sorted({*(meta.after or []), *endpoint.after})
        if endpoint.erase_after:
            meta.erase_after = sorted({*(meta.erase_after or []), *endpoint.erase_after})
        new_collections.append(coll.model_copy(update={"fields": list(fields.values()), "fides_meta": meta}))
    return dataset.model_copy(update={"collections": new_collections})


def declared_fields(dataset: Dataset) -> dict[str, set[str]]:
    """Per collection, the top-level fields the dataset file declares (before the config's inputs join), so an
    update's ``<all_object_fields>`` never sends an input-only field back."""
    return {c.name: {f.name for f in c.fields} for c in dataset.collections}


Declared = dict[str, dict[str, set[str]]]


def load_saas(folder: Path, targets: dict[str, SaasTarget], datasets: dict[str, Dataset], files: dict[str, str],
              problems: list[Problem]) -> tuple[dict[str, SaasConfig], dict[str, Dataset], Declared]:
    """Every SaaS dataset's config, and the datasets with the configs' inputs merged in (for the graph)."""
    configs: dict[str, SaasConfig] = {}
    declared: Declared = {}
    merged = dict(datasets)
    for key, target in sorted(targets.items()):
        if key not in datasets:
            continue  # privacy.yml's check names a mapping without a dataset
        config = load_saas_config(folder, target, key, problems)
        if config is None:
            continue
        configs[key] = config
        declared[key] = declared_fields(datasets[key])
        merged[key] = merge_into_dataset(config, datasets[key], files[key], target.config, problems)
    return configs, merged, declared
