"""The HTTP side of the SaaS connector (saas.py): placeholders, bodies, pages, retries and the rate limit, as
fides' SaaS config format defines them; no Airflow import, no I/O but the HTTP client handed in."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from ..errors import DataSourceError, RequestError
from ..model.saas_format import PLACEHOLDER, SaasConfig
from ..model.saas_strategies import RateLimitConfig

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


def replaced(prepared: Prepared, **changes: Any) -> Prepared:
    return Prepared(**{**prepared.__dict__, **changes})


def read_json(response: httpx.Response | None, where: str, prepared: Prepared) -> Any:
    if response is None or response.status_code == 204 or not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise DataSourceError(f"{where}: {prepared.method} {prepared.template}: the answer is not JSON") from None


def flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, list):
            out.extend(item)
        elif item is not None:
            out.append(item)
    return out


def builtins() -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "iso_8601_datetime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def holds(value: Any, masked: Any) -> bool:
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
