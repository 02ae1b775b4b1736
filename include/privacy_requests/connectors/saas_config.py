"""SaaS connector configs in fides' format (``saas_config:`` YAML): typed models, loading, and the merge of
the config's inputs into the dataset's graph.

A config describes the HTTP requests of each collection (``endpoints``); the fideslang dataset beside it
describes the fields. As in fides, the ``param_values`` of a collection's read requests that come from an
identity or a dataset reference become fields of the collection with that identity or reference, so the graph
reaches a SaaS collection from an identity, from a SQL collection's field, or from another SaaS collection.

What this engine does not implement is refused at load time, naming the part (``request_override``,
``async_config``, ``output``, ``consent_requests`` ...): a config that silently lost half its requests would
report an erasure that never happened. Nothing here does I/O beyond reading the file; no Airflow import.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fideslang.models import CollectionMeta, Dataset, DatasetField, FidesDatasetReference, FidesMeta
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import Problem

INSTANCE_KEY = "<instance_fides_key>"
# Placeholders the engine fills itself (fides' names).
MASKED_OBJECT_FIELDS = "masked_object_fields"
ALL_OBJECT_FIELDS = "all_object_fields"
BUILTINS = frozenset({MASKED_OBJECT_FIELDS, ALL_OBJECT_FIELDS, "uuid", "iso_8601_datetime", "privacy_request_id"})
PLACEHOLDER = re.compile(r"<([^<>]+)>")
CONNECTION_ATTRIBUTES = ("host", "login", "password", "port", "schema")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _refuse(part: str, why: str = "") -> Any:
    """A validator for a part of fides' format this engine does not run: any value but the empty one fails."""

    def check(value: Any) -> Any:
        if value not in (None, False, [], {}, ""):
            raise ValueError(f"'{part}' is not supported by this engine{': ' + why if why else ''}")
        return value

    return check


# -- privacy.yml: how a dataset reaches its SaaS config and connection -------------------------------------

class SaasTarget(_Strict):
    """``datasets: {stripe: {saas: {config: saas/stripe.yml, conn_id: stripe_api}}}``: the config file (relative
    to the configuration folder) and the Airflow connection whose extras (by connector param name) and, where
    ``params`` says so, host, login, password, port or schema give the config's ``connector_params``."""

    config: str = Field(min_length=1)
    conn_id: str = Field(min_length=1)
    params: dict[str, Literal["host", "login", "password", "port", "schema"]] = Field(default_factory=dict)
    # Requests in flight at once for one task (a batch's subjects, the records of a collection).
    concurrency: int = Field(default=4, ge=1, le=64)
    # How a record is erased when its endpoint has both: the update (mask fields) or the delete.
    erase_by: Literal["update", "delete"] = "update"
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    # Over the config's client_config.protocol: http for a server on loopback (tests, the demo).
    protocol: Literal["http", "https"] | None = None


# -- the format ---------------------------------------------------------------------------------------------

class Reference(_Strict):
    dataset: str
    field: str
    direction: Literal["from"] | None = None

    @field_validator("direction", mode="before")
    @classmethod
    def _only_from(cls, value: Any) -> Any:
        if value == "to":
            raise ValueError("a param_value reference can only have direction 'from'")
        return value


class ParamValue(_Strict):
    name: str = Field(min_length=1)
    identity: str | None = None
    references: list[Reference] | None = None
    connector_param: str | None = None
    unpack: bool = False

    @field_validator("references", mode="before")
    @classmethod
    def _no_external(cls, value: Any) -> Any:
        for item in value or []:
            if isinstance(item, str):
                raise ValueError("external references (a name resolved from the connection's secrets) are not "
                                 "supported by this engine: reference a dataset field")
        return value

    _unpack = field_validator("unpack")(classmethod(lambda cls, v: _refuse("unpack")(v)))

    @model_validator(mode="after")
    def _one_source(self) -> ParamValue:
        if [bool(self.identity), bool(self.references), bool(self.connector_param)].count(True) != 1:
            raise ValueError("give exactly one of 'identity', 'references' or 'connector_param'")
        return self

    @property
    def is_input(self) -> bool:
        """Whether its values arrive through the graph (an identity or a reference)."""
        return bool(self.identity or self.references)


class Header(_Strict):
    name: str
    value: str


class QueryParam(_Strict):
    name: str
    value: int | str


# Authentication strategies -------------------------------------------------------------------------------

class BasicConfig(_Strict):
    username: str
    password: str | None = None


class BearerConfig(_Strict):
    token: str


class ApiKeyConfig(_Strict):
    headers: list[Header] | None = None
    query_params: list[QueryParam] | None = None
    body: str | None = None
    _body = field_validator("body")(classmethod(lambda cls, v: _refuse("body", "give the key as a header or a "
                                                                       "query param")(v)))

    @model_validator(mode="after")
    def _some(self) -> ApiKeyConfig:
        if not self.headers and not self.query_params:
            raise ValueError("an api_key authentication needs 'headers' or 'query_params'")
        return self


class QueryParamConfig(_Strict):
    name: str
    value: str


class Basic(_Strict):
    strategy: Literal["basic"]
    configuration: BasicConfig


class Bearer(_Strict):
    strategy: Literal["bearer"]
    configuration: BearerConfig


class ApiKey(_Strict):
    strategy: Literal["api_key"]
    configuration: ApiKeyConfig


class QueryParamAuth(_Strict):
    strategy: Literal["query_param"]
    configuration: QueryParamConfig


class OAuth2ClientCredentials(_Strict):
    strategy: Literal["oauth2_client_credentials"]
    configuration: OAuth2Config


class OAuth2AuthorizationCode(_Strict):
    strategy: Literal["oauth2_authorization_code"]
    configuration: Any = None

    @model_validator(mode="after")
    def _refused(self) -> OAuth2AuthorizationCode:
        raise ValueError("'oauth2_authorization_code' is not supported by this engine (it needs a person to "
                         "authorize in a browser); use oauth2_client_credentials, bearer or api_key")


Authentication = Annotated[Basic | Bearer | ApiKey | QueryParamAuth | OAuth2ClientCredentials
                           | OAuth2AuthorizationCode, Field(discriminator="strategy")]


# Postprocessors and pagination ---------------------------------------------------------------------------

class IdentityRef(_Strict):
    identity: str


class UnwrapConfig(_Strict):
    data_path: str


class FilterConfig(_Strict):
    field: str
    value: IdentityRef | str | int
    exact: bool = True
    case_sensitive: bool = True

    @field_validator("value", mode="before")
    @classmethod
    def _no_dataset_reference(cls, value: Any) -> Any:
        if isinstance(value, dict) and "dataset_reference" in value:
            raise ValueError("a filter on a 'dataset_reference' is not supported by this engine: filter on an "
                             "identity or a constant")
        return value


class Unwrap(_Strict):
    strategy: Literal["unwrap"]
    configuration: UnwrapConfig


class Filter(_Strict):
    strategy: Literal["filter"]
    configuration: FilterConfig


PostProcessor = Annotated[Unwrap | Filter, Field(discriminator="strategy")]


class ConnectorParamRef(_Strict):
    connector_param: str


class OffsetConfig(_Strict):
    incremental_param: str
    increment_by: int = Field(gt=0)
    limit: int | ConnectorParamRef | None = None


class CursorConfig(_Strict):
    cursor_param: str
    field: str


class LinkConfig(_Strict):
    source: Literal["headers", "body"]
    rel: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _where(self) -> LinkConfig:
        if self.source == "headers" and not self.rel:
            raise ValueError("a link in the headers needs 'rel' (e.g. next)")
        if self.source == "body" and not self.path:
            raise ValueError("a link in the body needs 'path'")
        return self


class Offset(_Strict):
    strategy: Literal["offset"]
    configuration: OffsetConfig


class Cursor(_Strict):
    strategy: Literal["cursor"]
    configuration: CursorConfig


class Link(_Strict):
    strategy: Literal["link"]
    configuration: LinkConfig


Pagination = Annotated[Offset | Cursor | Link, Field(discriminator="strategy")]


class RateLimit(_Strict):
    rate: int = Field(gt=0)
    period: Literal["second", "minute", "hour", "day"]
    custom_key: str | None = None

    @property
    def seconds(self) -> float:
        return {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[self.period]


class RateLimitConfig(_Strict):
    limits: list[RateLimit] | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> RateLimitConfig:
        if self.enabled and not self.limits:
            raise ValueError("limits must be set if the rate limit is enabled")
        if not self.enabled and self.limits:
            raise ValueError("limits cannot be set if enabled is false")
        return self


# Requests -------------------------------------------------------------------------------------------------

class SaasRequest(_Strict):
    """One request (fides' SaaSRequest): method and path with ``<placeholders>``, headers, query params, body."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(min_length=1)
    headers: list[Header] = Field(default_factory=list)
    query_params: list[QueryParam] = Field(default_factory=list)
    body: str | None = None
    param_values: list[ParamValue] = Field(default_factory=list)
    data_path: str | None = None
    postprocessors: list[PostProcessor] | None = None
    pagination: Pagination | None = None
    grouped_inputs: list[str] = Field(default_factory=list)
    ignore_errors: bool | list[int] = False
    rate_limit_config: RateLimitConfig | None = None
    skip_missing_param_values: bool = False
    # Parts of fides' format this engine refuses.
    request_override: str | None = None
    client_config: Any = None
    async_config: Any = None

    _r1 = field_validator("request_override")(classmethod(
        lambda cls, v: _refuse("request_override", "overrides are fides' Python functions")(v)))
    _r2 = field_validator("client_config")(classmethod(
        lambda cls, v: _refuse("client_config", "a request-level client_config; set it once for the config")(v)))
    _r3 = field_validator("async_config")(classmethod(lambda cls, v: _refuse("async_config")(v)))

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> SaasRequest:
        names = [p.name for p in self.param_values]
        if len(set(names)) != len(names):
            raise ValueError("param_values names must be unique")
        if isinstance(self.pagination, Offset):
            param = self.pagination.configuration.incremental_param
            if not any(q.name == param for q in self.query_params):
                raise ValueError(f"offset pagination: query param '{param}' not found in query_params")
        if self.grouped_inputs:
            if not set(self.grouped_inputs) <= set(names):
                raise ValueError("grouped_inputs must also be declared as param_values")
            grouped = [p for p in self.param_values if p.name in self.grouped_inputs]
            if any(not p.references for p in grouped):
                raise ValueError("grouped_inputs must be reference param_values (values of one upstream row)")
            sources = {(p.references[0].dataset, p.references[0].field.split(".")[0])
                       for p in grouped if p.references}
            if len(sources) != 1:
                raise ValueError("grouped_inputs must all reference the same collection")
        return self

    def placeholders(self) -> list[tuple[str, str]]:
        """(where, placeholder name) of every ``<name>`` the request uses."""
        found = [("path", m) for m in PLACEHOLDER.findall(self.path)]
        found += [(f"headers[{i}].value", m) for i, h in enumerate(self.headers) for m in PLACEHOLDER.findall(h.value)]
        found += [(f"query_params[{i}].value", m) for i, q in enumerate(self.query_params)
                  if isinstance(q.value, str) for m in PLACEHOLDER.findall(q.value)]
        found += [("body", m) for m in PLACEHOLDER.findall(self.body or "")]
        return found


class ReadRequest(SaasRequest):
    output: str | None = None
    _r4 = field_validator("output")(classmethod(lambda cls, v: _refuse("output", "output templates")(v)))


class RequestMap(_Strict):
    read: list[ReadRequest] = Field(default_factory=list)  # one request or a list (a single one is listed)
    update: SaasRequest | None = None
    delete: SaasRequest | None = None

    @field_validator("read", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @property
    def reads(self) -> list[ReadRequest]:
        return self.read


class Endpoint(_Strict):
    name: str
    requests: RequestMap
    after: list[str] = Field(default_factory=list)
    erase_after: list[str] = Field(default_factory=list)
    skip_processing: bool = False
    _r = field_validator("skip_processing")(classmethod(
        lambda cls, v: _refuse("skip_processing", "leave the endpoint out instead")(v)))

    @model_validator(mode="after")
    def _reads(self) -> Endpoint:
        if not self.requests.reads:
            raise ValueError("an endpoint needs a read request (delete-only endpoints are not supported)")
        groups = {tuple(r.grouped_inputs) for r in self.requests.reads}
        if len(groups) > 1:
            raise ValueError("the grouped_inputs of every read request must be the same")
        return self


class OAuth2Config(_Strict):
    token_request: SaasRequest
    expires_in: int | None = Field(default=None, gt=0)
    refresh_request: SaasRequest | None = None


class ClientConfig(_Strict):
    protocol: Literal["http", "https"]
    host: str = Field(min_length=1)
    authentication: Authentication | None = None


class ConnectorParam(_Strict):
    name: str
    label: str | None = None
    description: str | None = None
    default_value: str | int | list[str] | list[int] | None = None
    options: list[str] | None = None
    multiselect: bool = False
    sensitive: bool = False


class SaasConfig(_Strict):
    """The ``saas_config:`` of one file."""

    fides_key: str
    name: str
    type: str
    description: str = ""
    version: str = ""
    replaceable: bool = False
    user_guide: str | None = None
    connector_params: list[ConnectorParam] = Field(default_factory=list)
    client_config: ClientConfig
    endpoints: list[Endpoint] = Field(min_length=1)
    test_request: SaasRequest | None = None
    rate_limit_config: RateLimitConfig | None = None
    # Parts of fides' format this engine refuses.
    external_references: Any = None
    data_protection_request: Any = None
    consent_requests: Any = None
    display_info: Any = None

    _r1 = field_validator("external_references")(classmethod(lambda cls, v: _refuse("external_references")(v)))
    _r2 = field_validator("data_protection_request")(classmethod(
        lambda cls, v: _refuse("data_protection_request", "use an endpoint's delete request")(v)))
    _r3 = field_validator("consent_requests")(classmethod(
        lambda cls, v: _refuse("consent_requests", "consent is not part of this engine")(v)))

    @model_validator(mode="after")
    def _unique(self) -> SaasConfig:
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("endpoint names must be unique")
        return self

    def endpoint(self, name: str) -> Endpoint:
        return next(e for e in self.endpoints if e.name == name)

    @property
    def param_names(self) -> set[str]:
        return {p.name for p in self.connector_params}


OAuth2ClientCredentials.model_rebuild()


# -- loading ------------------------------------------------------------------------------------------------

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
        data = yaml.load(text.replace(INSTANCE_KEY, dataset_key), Loader=_YAML_LOADER)
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
    _check_placeholders(config, file, problems)
    return config if len(problems) == before else None


def _check_placeholders(config: SaasConfig, file: str, problems: list[Problem]) -> None:
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
