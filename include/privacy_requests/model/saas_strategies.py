"""fides' SaaS config format, its swappable strategies: authentication (but OAuth2, whose token request is a
request: saas_format.py), postprocessors, pagination and rate limits. A part this engine does not run is
refused by name (``refuse``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def refuse(part: str, why: str = "") -> Callable[[Any], Any]:
    """A validator for a part of fides' format this engine does not run: any value but the empty one fails."""

    def check(value: Any) -> Any:
        if value not in (None, False, [], {}, ""):
            raise ValueError(f"'{part}' is not supported by this engine{': ' + why if why else ''}")
        return value

    return check


class Header(Strict):
    name: str
    value: str


class QueryParam(Strict):
    name: str
    value: int | str


# Authentication strategies -------------------------------------------------------------------------------

class BasicConfig(Strict):
    username: str
    password: str | None = None


class BearerConfig(Strict):
    token: str


class ApiKeyConfig(Strict):
    headers: list[Header] | None = None
    query_params: list[QueryParam] | None = None
    body: str | None = None
    _body = field_validator("body")(classmethod(lambda cls, v: refuse("body", "give the key as a header or a "
                                                                       "query param")(v)))

    @model_validator(mode="after")
    def _some(self) -> ApiKeyConfig:
        if not self.headers and not self.query_params:
            raise ValueError("an api_key authentication needs 'headers' or 'query_params'")
        return self


class QueryParamConfig(Strict):
    name: str
    value: str


class Basic(Strict):
    strategy: Literal["basic"]
    configuration: BasicConfig


class Bearer(Strict):
    strategy: Literal["bearer"]
    configuration: BearerConfig


class ApiKey(Strict):
    strategy: Literal["api_key"]
    configuration: ApiKeyConfig


class QueryParamAuth(Strict):
    strategy: Literal["query_param"]
    configuration: QueryParamConfig


class OAuth2AuthorizationCode(Strict):
    strategy: Literal["oauth2_authorization_code"]
    configuration: Any = None

    @model_validator(mode="after")
    def _refused(self) -> OAuth2AuthorizationCode:
        raise ValueError("'oauth2_authorization_code' is not supported by this engine (it needs a person to "
                         "authorize in a browser); use oauth2_client_credentials, bearer or api_key")


# Postprocessors and pagination ---------------------------------------------------------------------------

class IdentityRef(Strict):
    identity: str


class UnwrapConfig(Strict):
    data_path: str


class FilterConfig(Strict):
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


class Unwrap(Strict):
    strategy: Literal["unwrap"]
    configuration: UnwrapConfig


class Filter(Strict):
    strategy: Literal["filter"]
    configuration: FilterConfig


PostProcessor = Annotated[Unwrap | Filter, Field(discriminator="strategy")]


class ConnectorParamRef(Strict):
    connector_param: str


class OffsetConfig(Strict):
    incremental_param: str
    increment_by: int = Field(gt=0)
    limit: int | ConnectorParamRef | None = None


class CursorConfig(Strict):
    cursor_param: str
    field: str


class LinkConfig(Strict):
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


class Offset(Strict):
    strategy: Literal["offset"]
    configuration: OffsetConfig


class Cursor(Strict):
    strategy: Literal["cursor"]
    configuration: CursorConfig


class Link(Strict):
    strategy: Literal["link"]
    configuration: LinkConfig


Pagination = Annotated[Offset | Cursor | Link, Field(discriminator="strategy")]


class RateLimit(Strict):
    rate: int = Field(gt=0)
    period: Literal["second", "minute", "hour", "day"]
    custom_key: str | None = None

    @property
    def seconds(self) -> float:
        return {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[self.period]


class RateLimitConfig(Strict):
    limits: list[RateLimit] | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> RateLimitConfig:
        if self.enabled and not self.limits:
            raise ValueError("limits must be set if the rate limit is enabled")
        if not self.enabled and self.limits:
            raise ValueError("limits cannot be set if enabled is false")
        return self
