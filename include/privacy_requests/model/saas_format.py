"""fides' SaaS config format (``saas_config:`` YAML) as typed models: connector params, client config,
endpoints with read (one request or a list), update and delete requests. What this engine does not implement is
refused by name (``request_override``, ``async_config``, ``output``, ``consent_requests`` ...): a config that
silently lost half its requests would report an erasure that never happened. Loading: saas_loading.py."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from .saas_strategies import (
    ApiKey,
    Basic,
    Bearer,
    Header,
    OAuth2AuthorizationCode,
    Offset,
    Pagination,
    PostProcessor,
    QueryParam,
    QueryParamAuth,
    RateLimitConfig,
    Strict,
    refuse,
)

INSTANCE_KEY = "<instance_fides_key>"
# Placeholders the engine fills itself (fides' names).
MASKED_OBJECT_FIELDS = "masked_object_fields"
ALL_OBJECT_FIELDS = "all_object_fields"
BUILTINS = frozenset({MASKED_OBJECT_FIELDS, ALL_OBJECT_FIELDS, "uuid", "iso_8601_datetime", "privacy_request_id"})
PLACEHOLDER = re.compile(r"<([^<>]+)>")


class SaasTarget(Strict):
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

class Reference(Strict):
    dataset: str
    field: str
    direction: Literal["from"] | None = None

    @field_validator("direction", mode="before")
    @classmethod
    def _only_from(cls, value: Any) -> Any:
        if value == "to":
            raise ValueError("a param_value reference can only have direction 'from'")
        return value


class ParamValue(Strict):
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

    _unpack = field_validator("unpack")(classmethod(lambda cls, v: refuse("unpack")(v)))

    @model_validator(mode="after")
    def _one_source(self) -> ParamValue:
        if [bool(self.identity), bool(self.references), bool(self.connector_param)].count(True) != 1:
            raise ValueError("give exactly one of 'identity', 'references' or 'connector_param'")
        return self

    @property
    def is_input(self) -> bool:
        """Whether its values arrive through the graph (an identity or a reference)."""
        return bool(self.identity or self.references)


# Requests -------------------------------------------------------------------------------------------------

class SaasRequest(Strict):
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
        lambda cls, v: refuse("request_override", "overrides are fides' Python functions")(v)))
    _r2 = field_validator("client_config")(classmethod(
        lambda cls, v: refuse("client_config", "a request-level client_config; set it once for the config")(v)))
    _r3 = field_validator("async_config")(classmethod(lambda cls, v: refuse("async_config")(v)))

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
    _r4 = field_validator("output")(classmethod(lambda cls, v: refuse("output", "output templates")(v)))


class RequestMap(Strict):
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


class Endpoint(Strict):
    name: str
    requests: RequestMap
    after: list[str] = Field(default_factory=list)
    erase_after: list[str] = Field(default_factory=list)
    skip_processing: bool = False
    _r = field_validator("skip_processing")(classmethod(
        lambda cls, v: refuse("skip_processing", "leave the endpoint out instead")(v)))

    @model_validator(mode="after")
    def _reads(self) -> Endpoint:
        if not self.requests.reads:
            raise ValueError("an endpoint needs a read request (delete-only endpoints are not supported)")
        groups = {tuple(r.grouped_inputs) for r in self.requests.reads}
        if len(groups) > 1:
            raise ValueError("the grouped_inputs of every read request must be the same")
        return self


class OAuth2Config(Strict):
    token_request: SaasRequest
    expires_in: int | None = Field(default=None, gt=0)
    refresh_request: SaasRequest | None = None


class OAuth2ClientCredentials(Strict):
    strategy: Literal["oauth2_client_credentials"]
    configuration: OAuth2Config


Authentication = Annotated[Basic | Bearer | ApiKey | QueryParamAuth | OAuth2ClientCredentials
                           | OAuth2AuthorizationCode, Field(discriminator="strategy")]


class ClientConfig(Strict):
    protocol: Literal["http", "https"]
    host: str = Field(min_length=1)
    authentication: Authentication | None = None


class ConnectorParam(Strict):
    name: str
    label: str | None = None
    description: str | None = None
    default_value: str | int | list[str] | list[int] | None = None
    options: list[str] | None = None
    multiselect: bool = False
    sensitive: bool = False


class SaasConfig(Strict):
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

    _r1 = field_validator("external_references")(classmethod(lambda cls, v: refuse("external_references")(v)))
    _r2 = field_validator("data_protection_request")(classmethod(
        lambda cls, v: refuse("data_protection_request", "use an endpoint's delete request")(v)))
    _r3 = field_validator("consent_requests")(classmethod(
        lambda cls, v: refuse("consent_requests", "consent is not part of this engine")(v)))

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
