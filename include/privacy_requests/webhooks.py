"""Policy webhooks: ordered HTTP calls before and after execution, over Airflow HTTP connections.

The payload identifies the request, the policy, the identity and the step, never access results. A two-way
webhook may answer ``{"derived_identity": {"phone_number": "..."}}``: those identities seed the traversal;
a two-way pre-execution webhook may answer ``{"halt": true}``: the request then waits until it is resumed.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowNotFoundException

from .errors import RequestError, TransientError
from .policy import Webhook


def call(webhook: Webhook, payload: dict[str, Any],
         headers: dict[str, str] | None = None) -> tuple[int, float, dict[str, Any]]:
    """POST the payload; returns (status, seconds, answer). 5xx and network trouble are transient, other
    refusals and malformed two-way answers are not."""
    hook = HttpHook(method="POST", http_conn_id=webhook.conn_id)
    started = time.monotonic()
    try:
        response = hook.run(webhook.endpoint, json=payload, headers=headers,
                            extra_options={"check_response": False, "timeout": 30})
    except AirflowNotFoundException:
        raise RequestError(f"webhook '{webhook.name}': connection '{webhook.conn_id}' does not exist") from None
    except requests.RequestException as exc:
        raise TransientError(f"webhook '{webhook.name}': {type(exc).__name__}") from None
    seconds = round(time.monotonic() - started, 3)
    if response.status_code >= 500:
        raise TransientError(f"webhook '{webhook.name}' answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise RequestError(f"webhook '{webhook.name}' refused the call: HTTP {response.status_code}")
    answer: dict[str, Any] = {}
    if webhook.direction == "two_way" and response.content:
        try:
            answer = response.json()
        except ValueError:
            raise RequestError(f"webhook '{webhook.name}' (two-way) did not answer JSON") from None
        if not isinstance(answer, dict):
            raise RequestError(f"webhook '{webhook.name}' (two-way) must answer a JSON object")
        derived = answer.get("derived_identity") or {}
        if not isinstance(derived, dict) or not all(isinstance(v, str) for v in derived.values()):
            raise RequestError(f"webhook '{webhook.name}': derived_identity must map identity types to strings")
    return response.status_code, seconds, answer
