"""The SaaS connector's client: connector params and the HTTP client (handed in, made on first use), requests
filled in from the config, authenticated, rate-limited, and retried on 429/5xx with backoff honouring
``Retry-After``; any other 4xx fails naming the status and the path template, never the body."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from ..errors import DataSourceError, RequestError, TransientError
from ..model.saas_format import OAuth2ClientCredentials, SaasConfig, SaasRequest
from ..model.saas_strategies import ApiKey, Basic, Bearer, QueryParamAuth
from .saas_http import RETRYABLE, MissingValue, Prepared, RateLimiter, builtins, form_encode, render, retry_after

log = logging.getLogger(__name__)


@dataclass
class SaasClient:
    """One SaaS dataset's API. ``params`` are the connector params (from the Airflow connection), ``client`` the
    HTTP client; either may be a callable, called when the first request is sent."""

    config: SaasConfig
    dataset: str
    params: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
    client: httpx.Client | Callable[[], httpx.Client]
    declared: dict[str, set[str]] = field(default_factory=dict)
    protocol: str | None = None  # the connection's schema, over the config's protocol (a local test server)
    erase_by: str = "update"
    concurrency: int = 4
    max_attempts: int = 4
    backoff_seconds: float = 1.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    statements: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._limiter = RateLimiter(self.sleep)
        self._token: tuple[str, float] | None = None

    # -- the connection, made on first use ------------------------------------------------------------
    @property
    def connector_params(self) -> Mapping[str, Any]:
        if callable(self.params):
            self.params = self.params()
        return self.params

    @property
    def http(self) -> httpx.Client:
        if not isinstance(self.client, httpx.Client):
            self.client = self.client()
        return self.client

    @property
    def base_url(self) -> str:
        cc = self.config.client_config
        return f"{self.protocol or cc.protocol}://{render(cc.host, self.connector_params)}"

    # -- requests ----------------------------------------------------------------------------------------
    def prepare(self, request: SaasRequest, values: Mapping[str, Any]) -> Prepared:
        """The request with its placeholders filled from the param values and connector params."""
        context = {**self.connector_params, **builtins(), **values}
        headers: dict[str, str] = {}
        for header in request.headers:
            try:
                headers[header.name] = render(header.value, context)
            except MissingValue:
                continue  # fides leaves out a header whose placeholder has no value
        query: dict[str, Any] = {}
        for param in request.query_params:
            if isinstance(param.value, int):
                query[param.name] = param.value
                continue
            try:
                query[param.name] = render(param.value, context)
            except MissingValue:
                continue
        body: bytes | None = None
        if request.body is not None:
            content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
            if content_type is None:
                content_type = headers["Content-Type"] = "application/json"
            text = render(request.body, context, "json")
            kind = content_type.split(";")[0].strip().lower()
            if kind == "application/x-www-form-urlencoded":
                try:
                    body = urlencode(form_encode(json.loads(text))).encode()
                except ValueError:
                    raise DataSourceError(f"{request.method} {request.path}: the body is not JSON once filled in; a "
                                          "form-encoded body is written as a JSON object") from None
            elif kind in ("application/json", "text/plain"):
                body = text.encode()
            else:
                raise DataSourceError(f"{request.method} {request.path}: Content-Type '{kind}' is not supported "
                                      "(application/json, application/x-www-form-urlencoded, text/plain)")
        return Prepared(request.method, render(request.path, context, "path"), query, headers, body, request.path)

    def send(self, prepared: Prepared, request: SaasRequest, where: str,
             gone_ok: bool = False) -> httpx.Response | None:
        """Send with authentication and the rate limit; 429/5xx retried. None for an ignored error (or, with
        ``gone_ok``, a 404/410)."""
        rate = request.rate_limit_config or self.config.rate_limit_config
        what = f"{where}: {prepared.method} {prepared.template}"
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            self._limiter.wait(rate)
            headers, query = self._authorize(prepared)
            try:
                response = self.http.request(prepared.method, self.base_url + prepared.path, params=query,
                                             headers=headers, content=prepared.body)
            except httpx.TransportError as exc:
                if attempt < self.max_attempts:
                    self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
                    continue
                raise TransientError(f"{what}: {type(exc).__name__} (the API could not be reached)") from None
            finally:
                with self._lock:
                    self.statements += 1
            status = response.status_code
            if status < 400:
                return response
            if status == 401 and self._token is not None and not refreshed:
                self._token, refreshed = None, True  # the token expired early: one new token, one more try
                continue
            if status in RETRYABLE:
                if attempt < self.max_attempts:
                    delay = retry_after(response, self.max_retry_after)
                    self.sleep(delay if delay is not None else self.backoff_seconds * 2 ** (attempt - 1))
                    continue
                raise TransientError(f"{what} answered {status} after {attempt} tries; Airflow retries the task")
            if gone_ok and status in (404, 410):
                return None
            if request.ignore_errors is True or (isinstance(request.ignore_errors, list)
                                                 and status in request.ignore_errors):
                log.info("%s answered %d, ignored as configured (ignore_errors)", what, status)
                return None
            if status in (401, 403):
                raise RequestError(f"{what} answered {status}: the connection's credentials were refused")
            raise DataSourceError(f"{what} answered {status}")

    def _authorize(self, prepared: Prepared) -> tuple[dict[str, str], dict[str, Any]]:
        auth = self.config.client_config.authentication
        headers, query = dict(prepared.headers), dict(prepared.query)
        params = self.connector_params
        if isinstance(auth, Basic):
            user = render(auth.configuration.username, params)
            password = render(auth.configuration.password, params) if auth.configuration.password else ""
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        elif isinstance(auth, Bearer):
            headers["Authorization"] = "Bearer " + render(auth.configuration.token, params)
        elif isinstance(auth, ApiKey):
            for header in auth.configuration.headers or []:
                headers[header.name] = render(header.value, params)
            for param in auth.configuration.query_params or []:
                query[param.name] = render(str(param.value), params)
        elif isinstance(auth, QueryParamAuth):
            query[auth.configuration.name] = render(auth.configuration.value, params)
        elif isinstance(auth, OAuth2ClientCredentials):
            headers["Authorization"] = "Bearer " + self._access_token(auth)
        return headers, query

    def _access_token(self, auth: OAuth2ClientCredentials) -> str:
        """The client-credentials token, asked for once and again shortly before it expires."""
        with self._lock:
            if self._token and self._token[1] > time.monotonic() + 30:
                return self._token[0]
            conf = auth.configuration
            try:
                prepared = self.prepare(conf.token_request, {})
            except MissingValue as exc:
                raise RequestError(f"{self.dataset}: OAuth2 token request: connector param <{exc}> has no value") \
                    from None
            try:
                response = self.http.request(prepared.method, self.base_url + prepared.path, params=prepared.query,
                                             headers=prepared.headers, content=prepared.body)
            except httpx.TransportError as exc:
                raise TransientError(f"{self.dataset}: OAuth2 token request: {type(exc).__name__}") from None
            self.statements += 1
            if response.status_code in RETRYABLE:
                raise TransientError(f"{self.dataset}: OAuth2 token request answered {response.status_code}")
            try:
                token = response.json().get("access_token") if response.status_code < 400 else None
                expires = conf.expires_in or response.json().get("expires_in") or 3600
            except ValueError:
                token = None
            if not token:
                raise RequestError(f"{self.dataset}: OAuth2 token request answered {response.status_code} without "
                                   "an access_token: check the client id and secret of the connection")
            self._token = (str(token), time.monotonic() + float(expires))
            return self._token[0]

    def _run(self, work: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
        """The jobs' results in order, ``concurrency`` at a time."""
        if len(jobs) <= 1 or self.concurrency <= 1:
            return [work(job) for job in jobs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(work, jobs))

    def test_connection(self, send: bool = True) -> None:
        """Send the config's ``test_request`` (none: nothing to do), once: refused credentials raise
        RequestError, another 4xx DataSourceError, an API that cannot be reached TransientError. With ``send``
        False (a dry run) the request is prepared (the connection and its params are checked) and not sent."""
        request = self.config.test_request
        if request is None:
            return
        try:
            prepared = self.prepare(request, {})
        except MissingValue as exc:
            raise RequestError(f"{self.dataset}: test_request: placeholder <{exc}> has no value") from None
        if not send:
            return
        attempts, self.max_attempts = self.max_attempts, 1
        try:
            self.send(prepared, request, f"{self.dataset} (test_request)")
        finally:
            self.max_attempts = attempts
