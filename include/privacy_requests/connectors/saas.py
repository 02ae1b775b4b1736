"""SaaS connector: access and erasure through a vendor's HTTP API, as a fides SaaS config describes it
(saas_config.py). Plain Python: the HTTP client (an ``httpx.Client``) and the connector params (from the
Airflow connection) are handed in by the wing.

- Access: every read request of the collection whose inputs (identity, references) have values, once per
  combination of values (``grouped_inputs`` keep the values of one upstream row together), following the
  pagination; ``data_path`` and the postprocessors turn each page into records. The input values a record was
  found with are kept in it (under the param's name, never over a field the API returned), so a batch knows
  whose record it is and proof of erasure can look it up again.
- Erasure: one update (masked fields in the body placeholders) or delete per record, each recorded in the
  request's ledger once it succeeded: a cleared task sends only what is missing. Then the proof: the same
  reads again; an updated record read back must hold its masked values, a deleted one must be gone.
- Errors: 429 and 5xx are retried with backoff honouring ``Retry-After``, then left to the task's retries
  (TransientError); any other 4xx not in ``ignore_errors`` fails with the status and the endpoint's path
  template, never the body or the filled-in path (either can hold personal data).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from itertools import product
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from .. import layout
from ..errors import DataSourceError, RequestError, TransientError
from ..graph import Collection
from ..masking import FieldMask, Masker
from ..request import PrivacyRequest
from .base import Erased, ErasureWork, Found
from .saas_config import (
    ALL_OBJECT_FIELDS,
    MASKED_OBJECT_FIELDS,
    PLACEHOLDER,
    ApiKey,
    Basic,
    Bearer,
    Cursor,
    Filter,
    Link,
    OAuth2ClientCredentials,
    Offset,
    QueryParamAuth,
    RateLimitConfig,
    ReadRequest,
    SaasConfig,
    SaasRequest,
    Unwrap,
)

log = logging.getLogger(__name__)
MAX_PAGES = 100_000  # a cursor that never ends is a bug of the API or the config, not more data
RETRYABLE = frozenset({429, 500, 502, 503, 504})


class MissingValue(ValueError):
    """A placeholder of a request has no value (the record lacks the field, a param is not set)."""


@dataclass
class Prepared:
    """A request ready to send; ``template`` is the config's path, the only form of it ever logged."""

    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    body: bytes | None
    template: str

    def signature(self) -> str:
        return f"{self.method} {self.path}?{urlencode(sorted((k, str(v)) for k, v in self.query.items()))}"


# -- placeholders, paths and bodies ----------------------------------------------------------------------------

def dig(data: Any, path: str | None) -> Any:
    """The value at a dotted path (list indices as numbers); None when any step is missing."""
    if not path:
        return data
    node = data
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if node is None:
            return None
    return node


def render(template: str, values: Mapping[str, Any], how: str = "raw") -> str:
    """``<name>`` replaced by its value (``<name?>``: optional; missing, a quoted one becomes null). ``how``:
    ``path`` percent-encodes, ``json`` escapes inside a JSON string, ``raw`` inserts as is. An object value
    is inserted without its outer braces (fides' ``<masked_object_fields>`` convention), a list as JSON."""
    result = template
    for name in PLACEHOLDER.findall(template):
        optional = name.endswith("?")
        value = dig(values, name.removesuffix("?"))
        if value is None:
            if not optional:
                raise MissingValue(name)
            result = result.replace(f'"<{name}>"', "null").replace(f"<{name}>", "null")
            continue
        if isinstance(value, dict):
            text = json.dumps(value)[1:-1]
        elif isinstance(value, list):
            text = json.dumps(value)
        elif how == "path":
            text = quote(str(value), safe="")
        elif how == "json" and isinstance(value, str):
            text = json.dumps(value)[1:-1]
        else:
            text = str(value)
        result = result.replace(f"<{name}>", text)
    return result


def form_encode(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A JSON object as form fields with bracketed nesting (``metadata[plan]=x``, ``items[0][id]=y``)."""
    pairs: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            pairs += form_encode(value, f"{prefix}[{key}]" if prefix else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            pairs += form_encode(value, f"{prefix}[{index}]")
    else:
        pairs.append((prefix, "" if data is None else str(data).lower() if isinstance(data, bool) else str(data)))
    return pairs


def unflatten(flat: Mapping[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, written over a copy of ``base``."""
    out = json.loads(json.dumps(base, default=str)) if base else {}
    for path, value in flat.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def retry_after(response: httpx.Response, cap: float) -> float | None:
    """Seconds the server asks to wait (a number or an HTTP date), capped; None when it does not say."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), cap)


class RateLimiter:
    """Sliding windows (``rate`` requests per ``period``) shared by the threads of one connector."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self._sent: dict[tuple[int, float], deque[float]] = {}
        self._lock = threading.Lock()
        self._sleep = sleep

    def wait(self, config: RateLimitConfig | None) -> None:
        if not config or not config.enabled:
            return
        for limit in config.limits or []:
            key = (limit.rate, limit.seconds)
            while True:
                with self._lock:
                    sent = self._sent.setdefault(key, deque())
                    now = time.monotonic()
                    while sent and sent[0] <= now - limit.seconds:
                        sent.popleft()
                    if len(sent) < limit.rate:
                        sent.append(now)
                        break
                    delay = sent[0] + limit.seconds - now
                self._sleep(max(delay, 0.001))


# -- the connector ------------------------------------------------------------------------------------------

@dataclass
class SaasConnector:
    """One SaaS dataset. ``params`` are the connector params (from the Airflow connection), ``client`` the HTTP
    client; either may be a callable, called when the first request is sent."""

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

    # -- access ----------------------------------------------------------------------------------------
    def retrieve(self, request: PrivacyRequest, collection: Collection, inputs: dict[str, list[Any]]) -> Found:
        if not any(inputs.values()):
            return Found([])
        endpoint = self.config.endpoint(collection.address.collection)
        jobs = [(read, values) for read in endpoint.requests.reads
                for values in self.param_maps(read, inputs, request)]
        identity = request.identity
        pages = self._run(lambda job: self.read_all(job[0], job[1], identity, str(collection.address)), jobs)
        return Found(_distinct(collection, (row for rows in pages for row in rows)))

    def param_maps(self, read: ReadRequest, inputs: Mapping[str, list[Any]],
                   request: PrivacyRequest | None = None) -> list[dict[str, Any]]:
        """One map of param values per request to send: the product of the input values, grouped inputs kept
        together as one upstream row held them; none when an input has no value (the request is not sent)."""
        given = [p for p in read.param_values if p.is_input]
        if any(not inputs.get(p.name) for p in given):
            return []
        constants = {p.name: self.connector_params.get(p.connector_param or "") for p in read.param_values
                     if p.connector_param}
        grouped = [p for p in given if p.name in read.grouped_inputs]
        free = [p for p in given if p.name not in read.grouped_inputs]
        groups = _groups(grouped, inputs, request) if grouped else [{}]
        maps = []
        for group in groups:
            for combo in product(*(inputs[p.name] for p in free)):
                maps.append({**constants, **group, **dict(zip((p.name for p in free), combo, strict=True))})
        return maps

    def read_all(self, read: ReadRequest, values: dict[str, Any], identity: Mapping[str, Any],
                 where: str) -> list[dict[str, Any]]:
        """Every record one read request finds with one map of values, all pages."""
        try:
            prepared: Prepared | None = self.prepare(read, values)
        except MissingValue as exc:
            if read.skip_missing_param_values:
                return []
            raise DataSourceError(f"{where}: {read.method} {read.path}: placeholder <{exc}> has no value") from None
        records: list[dict[str, Any]] = []
        seen: set[str] = set()
        pages = 0
        while prepared is not None:
            if prepared.signature() in seen or pages >= MAX_PAGES:
                raise DataSourceError(f"{where}: {read.method} {read.path}: pagination does not end (the same page "
                                      "was asked twice)")
            seen.add(prepared.signature())
            pages += 1
            response = self.send(prepared, read, where)
            body = _json(response, where, prepared)
            page = dig(body, read.data_path) if read.data_path else body
            for record in self.postprocess(page, read, values, identity, where):
                for p in read.param_values:
                    if p.is_input:
                        record.setdefault(p.name, values[p.name])
                records.append(record)
            prepared = self.next_page(read, prepared, body, page, response, where) if response is not None else None
        return records

    def postprocess(self, data: Any, read: SaasRequest, values: Mapping[str, Any], identity: Mapping[str, Any],
                    where: str) -> list[dict[str, Any]]:
        for step in read.postprocessors or []:
            if isinstance(step, Unwrap):
                if isinstance(data, list):
                    data = _flatten([dig(item, step.configuration.data_path) for item in data])
                else:
                    data = dig(data, step.configuration.data_path)
            elif isinstance(step, Filter):
                data = _filter(data, step, values, identity, read)
        if not data:
            return []
        records = data if isinstance(data, list) else [data]
        if not all(isinstance(r, dict) for r in records):
            raise DataSourceError(f"{where}: {read.method} {read.path}: the records (after data_path and "
                                  "postprocessors) are not objects")
        return [dict(r) for r in records]

    def next_page(self, read: SaasRequest, prepared: Prepared, body: Any, page: Any, response: httpx.Response,
                  where: str) -> Prepared | None:
        strategy = read.pagination
        if strategy is None:
            return None
        if isinstance(strategy, Offset):
            if not page:
                return None
            conf = strategy.configuration
            limit = conf.limit
            if limit is not None and not isinstance(limit, int):
                try:
                    limit = int(self.connector_params[limit.connector_param])
                except (KeyError, TypeError, ValueError):
                    raise RequestError(f"{where}: offset pagination: connector param "
                                       f"'{limit.connector_param}' is not a whole number") from None
            try:
                current = int(prepared.query[conf.incremental_param])
            except (KeyError, TypeError, ValueError):
                raise DataSourceError(f"{where}: offset pagination: query param '{conf.incremental_param}' is not "
                                      "a number") from None
            following = current + conf.increment_by
            if limit and following > limit:
                return None
            return _replace(prepared, query={**prepared.query, conf.incremental_param: following})
        if isinstance(strategy, Cursor):
            conf = strategy.configuration
            cursor = dig(page[-1], conf.field) if isinstance(page, list) and page else None
            if cursor is None:
                cursor = dig(body, conf.field)
            if cursor is None:
                return None
            return _replace(prepared, query={**prepared.query, conf.cursor_param: cursor})
        if isinstance(strategy, Link):
            if not page:
                return None
            conf = strategy.configuration
            if conf.source == "headers":
                link = response.links.get(conf.rel or "", {}).get("url")
            else:
                link = dig(body, conf.path)
            if not link:
                return None
            url = urlsplit(str(link))
            if url.netloc and url.netloc != urlsplit(self.base_url).netloc:
                raise DataSourceError(f"{where}: {read.method} {read.path}: the next page's link points to another "
                                      "host; not followed (the credentials would go with it)")
            return _replace(prepared, path=url.path, query=dict(parse_qsl(url.query)))
        return None

    # -- requests ----------------------------------------------------------------------------------------
    def prepare(self, request: SaasRequest, values: Mapping[str, Any]) -> Prepared:
        """The request with its placeholders filled from the param values and connector params."""
        context = {**self.connector_params, **_builtins(), **values}
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

    # -- erasure -----------------------------------------------------------------------------------------
    def erasure_request(self, collection: Collection) -> tuple[str, SaasRequest | None]:
        requests = self.config.endpoint(collection.address.collection).requests
        if requests.delete and (self.erase_by == "delete" or not requests.update):
            return "delete", requests.delete
        return "update", requests.update

    def erase(self, work: ErasureWork) -> Erased:
        collection, store = work.collection, work.request.store
        action, request = self.erasure_request(collection)
        if request is None:
            reason = "the SaaS config has no update or delete request for this endpoint: nothing erased"
            log.warning("%s: %s", collection.address, reason)
            return Erased("no_erasure_request", detail={"reason": reason})
        masks = self.masks(work)
        if not masks:
            log.info("%s: no field matches the erasure targets", collection.address)
            return Erased("nothing_to_erase")
        secrets = _secrets(work)
        jobs = list(self._erasure_jobs(work, action, request, masks))
        where = str(collection.address)

        def do(job: tuple[dict[str, Any], Prepared | None]) -> str:
            row, prepared = job
            if prepared is None:
                return "skipped"
            entry = _ledger_name(self.dataset, collection, prepared, secrets)
            if store.exists(entry):
                return "done_before"
            # A delete that finds the record gone (404/410: an earlier try whose success was not recorded, or
            # the vendor's own deletion) has reached what it was sent for.
            self.send(prepared, request, where, gone_ok=action == "delete")
            store.create(entry, {"action": action, "time": datetime.now(UTC).isoformat()})
            return "sent"

        outcomes = self._run(do, jobs)
        sent, before = outcomes.count("sent"), outcomes.count("done_before")
        skipped = outcomes.count("skipped")
        proof = self.verify(work, action, request, masks, list(zip(jobs, outcomes, strict=True)), secrets)
        detail = {"action": action, "fields": sorted(masks), "requests": sent, "already_done": before,
                  "skipped_missing_values": skipped, **proof}
        log.info("%s: %s request(s) sent for %d record(s), %d done by an earlier try, %d skipped; verified %d, "
                 "%d no longer found", where, action, sent, len(jobs), before, skipped, proof["verified"],
                 proof["gone"])
        return Erased("complete", masked=sent + before, detail=detail,
                      event={"event": "saas_records_erased", "action": action, "records": sent + before,
                             "fields": sorted(masks)})

    def masks(self, work: ErasureWork) -> dict[str, FieldMask]:
        """The erasable fields the API can be asked to change (read-only fields left out), with strategies."""
        chosen = {path: spec for path, spec in work.fields.items()
                  if not (work.collection.field(path) and work.collection.field(path).read_only)}
        if not chosen:
            return {}
        secrets = work.request.store.get(layout.SECRETS)
        if secrets is None:
            raise RequestError("masking secrets are missing: clear validate_request to make them")
        return {path: FieldMask(Masker(spec.strategy, spec.configuration, secrets),
                                work.collection.field(path).length if work.collection.field(path) else None)
                for path, spec in chosen.items()}

    def _erasure_jobs(self, work: ErasureWork, action: str, request: SaasRequest,
                      masks: dict[str, FieldMask]) -> Iterator[tuple[dict[str, Any], Prepared | None]]:
        """Per record found (each once), the update or delete to send; None where a value is missing and the
        request says to skip it."""
        collection = work.collection
        declared = self.declared.get(collection.address.collection)
        seen: set[str] = set()
        for row in work.rows():
            values = self.erasure_values(work, request, row)
            masked = {path: mask.apply(dig(row, path)) for path, mask in masks.items() if dig(row, path) is not None}
            if action == "update" and not masked:
                continue  # nothing of the record holds a value to erase
            kept = {k: v for k, v in row.items() if (declared is None or k in declared)
                    and not (collection.field(k) and collection.field(k).read_only)}
            values[MASKED_OBJECT_FIELDS] = unflatten(masked)
            values[ALL_OBJECT_FIELDS] = unflatten(masked, kept)
            try:
                prepared = self.prepare(request, values)
            except MissingValue as exc:
                if request.skip_missing_param_values:
                    yield row, None
                    continue
                raise DataSourceError(f"{collection.address}: {request.method} {request.path}: placeholder "
                                      f"<{exc}> has no value in a record found") from None
            if prepared.signature() in seen:
                continue
            seen.add(prepared.signature())
            row["__masked__"] = masked
            yield row, prepared

    def erasure_values(self, work: ErasureWork, request: SaasRequest, row: dict[str, Any]) -> dict[str, Any]:
        """An update's or delete's param values: references from the record, identities from the record's
        identity fields (a batch) or the request, connector params from the connection."""
        values: dict[str, Any] = {}
        identity = work.request.identity
        for p in request.param_values:
            if p.references:
                values[p.name] = dig(row, p.references[0].field.split(".", 1)[1])
            elif p.identity:
                held = [row.get(f.path) for f in work.collection.fields if f.identity == p.identity]
                values[p.name] = next((v for v in held if v is not None), identity.get(p.identity))
            elif p.connector_param:
                values[p.name] = self.connector_params.get(p.connector_param)
        return values

    # -- proof of erasure --------------------------------------------------------------------------------
    def verify(self, work: ErasureWork, action: str, request: SaasRequest, masks: dict[str, FieldMask],
               jobs: list[tuple[tuple[dict[str, Any], Prepared | None], str]], secrets: dict[str, Any]
               ) -> dict[str, int]:
        """Read the erased records again with the values they were found with. An updated record read back
        must hold its masked values (one no longer found, its identity masked, counts as gone); a deleted
        record must be gone. Records that fail lose their ledger entry, so a clear sends them again."""
        collection = work.collection
        erased = [(row, p, outcome) for (row, p), outcome in jobs if p is not None]
        if not erased:
            return {"verified": 0, "gone": 0}
        endpoint = self.config.endpoint(collection.address.collection)
        lookups: dict[str, tuple[ReadRequest, dict[str, Any]]] = {}
        for row, _, _ in erased:
            for read in endpoint.requests.reads:
                inputs = {p.name: [row[p.name]] for p in read.param_values if p.is_input and p.name in row}
                for values in self.param_maps(read, inputs, work.request):
                    lookups.setdefault(json.dumps([read.path, values], sort_keys=True, default=str), (read, values))
        identity = work.request.identity
        where = str(collection.address)
        found = self._run(lambda job: self.read_all(job[0], job[1], identity, where), list(lookups.values()))
        after: dict[str, dict[str, Any]] = {}
        for rows in found:
            for row in rows:
                after[self.record_key(work, request, row)] = row
        verified = gone = 0
        failed: list[Prepared] = []
        for row, prepared, outcome in erased:
            again = after.get(self.record_key(work, request, row))
            if again is None:
                gone += 1
            elif action == "delete":
                failed.append(prepared)  # type: ignore[arg-type]
            elif all(_holds(dig(again, path), value)
                     or (outcome == "done_before" and dig(again, path) != dig(row, path))
                     for path, value in row["__masked__"].items()):
                verified += 1  # (a value masked by an earlier try: a random mask differs from this try's)
            else:
                failed.append(prepared)  # type: ignore[arg-type]
        if failed:
            for prepared in failed:
                work.request.store.delete(_ledger_name(self.dataset, collection, prepared, secrets))
            raise DataSourceError(
                f"{where}: erasure not verified: {len(failed)} of {len(erased)} record(s) read back "
                f"{'still exist' if action == 'delete' else 'do not hold their masked values'}; fix the cause "
                "and clear this task: it sends only those again")
        work.request.store.add_event("erasure_verified", collection=where, rows=verified, gone=gone,
                                     fields=len(masks))
        return {"verified": verified, "gone": gone}

    def record_key(self, work: ErasureWork, request: SaasRequest, row: dict[str, Any]) -> str:
        """What identifies a record: its primary key, else the fields the erasure request addresses it by."""
        keys = [f.path for f in work.collection.primary_keys]
        if not keys:
            keys = [p.references[0].field.split(".", 1)[1] for p in request.param_values if p.references]
        if not keys:
            return json.dumps({k: v for k, v in row.items() if k != "__masked__"}, sort_keys=True, default=str)
        return json.dumps([dig(row, k) for k in keys], default=str)

    # -- dry run -----------------------------------------------------------------------------------------
    def plan(self, work: ErasureWork) -> dict[str, Any]:
        """The requests erasure would send (method, path template, how many, which fields); none is sent."""
        action, request = self.erasure_request(work.collection)
        fields = {path: {"strategy": spec.strategy} for path, spec in sorted(work.fields.items())}
        if request is None:
            return {"rows": 0, "fields": fields, "requests": [],
                    "skipped": {"*": "the SaaS config has no update or delete request for this endpoint"}}
        masks = self.masks(work)
        jobs = list(self._erasure_jobs(work, action, request, masks)) if masks else []
        count = sum(1 for _, p in jobs if p is not None)
        return {"rows": count, "fields": fields, "by": f"{action} requests to the {self.config.name} API",
                "requests": [{"method": request.method, "path": request.path, "count": count,
                              "fields": sorted(masks) if action == "update" else []}],
                "skipped": {"missing values": str(len(jobs) - count)} if len(jobs) > count else {}}


# -- helpers ----------------------------------------------------------------------------------------------

def _replace(prepared: Prepared, **changes: Any) -> Prepared:
    return Prepared(**{**prepared.__dict__, **changes})


def _json(response: httpx.Response | None, where: str, prepared: Prepared) -> Any:
    if response is None or response.status_code == 204 or not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise DataSourceError(f"{where}: {prepared.method} {prepared.template}: the answer is not JSON") from None


def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, list):
            out.extend(item)
        elif item is not None:
            out.append(item)
    return out


def _filter(data: Any, step: Filter, values: Mapping[str, Any], identity: Mapping[str, Any],
            read: SaasRequest) -> Any:
    conf = step.configuration
    wanted = conf.value
    if not isinstance(wanted, (str, int)):
        name = next((p.name for p in read.param_values if p.identity == wanted.identity), None)
        wanted = values.get(name) if name else identity.get(wanted.identity)
        if wanted is None:
            return []

    def norm(v: Any) -> Any:
        return v.casefold() if isinstance(v, str) and not conf.case_sensitive else v

    def matches(item: Any) -> bool:
        target = dig(item, conf.field)
        targets = target if isinstance(target, list) else [target]
        for t in targets:
            if t is None:
                continue
            if isinstance(t, str) and isinstance(wanted, str):
                if (norm(wanted) == norm(t)) if conf.exact else (norm(wanted) in norm(t)):
                    return True
            elif t == wanted or str(t) == str(wanted):
                return True
        return False

    if isinstance(data, list):
        return [item for item in data if matches(item)]
    return data if data and matches(data) else []


def _groups(grouped: list[Any], inputs: Mapping[str, list[Any]], request: PrivacyRequest | None
            ) -> list[dict[str, Any]]:
    """The grouped inputs as the upstream rows held them together, restricted to the values that arrived."""
    from ..graph import CollectionAddress

    ref = grouped[0].references[0]
    source = CollectionAddress(ref.dataset, ref.field.split(".")[0])
    if request is None or not request.store.exists(layout.rows(source)):
        return []
    allowed = {p.name: {json.dumps(v, default=str) for v in inputs[p.name]} for p in grouped}
    groups: dict[str, dict[str, Any]] = {}
    for item in request.store.read_rows(layout.rows(source)):
        row = item["row"] if "row" in item and "subjects" in item else item  # a batch's rows carry their subjects
        group = {p.name: dig(row, p.references[0].field.split(".", 1)[1]) for p in grouped}
        if all(json.dumps(v, default=str) in allowed[k] for k, v in group.items()):
            groups.setdefault(json.dumps(group, sort_keys=True, default=str), group)
    return list(groups.values())


def _distinct(collection: Collection, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each record once (by primary key, else by content): two read requests can find the same record."""
    keys = [f.path for f in collection.primary_keys]
    seen: set[str] = set()
    for row in rows:
        key = json.dumps([dig(row, k) for k in keys] if keys else row, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            yield row


def _builtins() -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "iso_8601_datetime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _secrets(work: ErasureWork) -> dict[str, Any]:
    secrets = work.request.store.get(layout.SECRETS)
    if secrets is None:
        raise RequestError("masking secrets are missing: clear validate_request to make them")
    return secrets


def _ledger_name(dataset: str, collection: Collection, prepared: Prepared, secrets: dict[str, Any]) -> str:
    """One create-only ledger document per request sent; its name is a keyed digest of the request, so it
    tells nothing of the record (a path can hold an id derived from an email address)."""
    key = hashlib.sha256(json.dumps(secrets, sort_keys=True).encode()).digest()
    digest = hashlib.blake2b(prepared.signature().encode(), key=key[:32], digest_size=20).hexdigest()
    return f"{layout.LEDGER}/saas/{dataset}.{collection.address.collection}/{digest}.json"


def _holds(value: Any, masked: Any) -> bool:
    """Whether a value read back is the masked one (a null mask may come back as absent or empty)."""
    if masked is None:
        return value in (None, "")
    return value == masked or str(value) == str(masked)


def resolve_params(config: SaasConfig, given: Mapping[str, Any], conn_id: str) -> dict[str, Any]:
    """The connector params: those the connection gives, else the config's default; a missing one is an
    error naming the param and the connection (never a value)."""
    resolved: dict[str, Any] = {}
    missing = []
    for param in config.connector_params:
        value = given.get(param.name, param.default_value)
        if value in (None, ""):
            missing.append(param.name)
        else:
            resolved[param.name] = value
    if missing:
        raise RequestError(f"{config.name} connector param(s) {', '.join(missing)} have no value: set them as extras "
                           f"of the Airflow connection '{conn_id}' (or map them with 'params' in privacy.yml)")
    return resolved
