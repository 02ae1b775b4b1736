"""The policy's pre- and post-execution webhooks, in order; each call that succeeded is not repeated."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context
from airflow.sdk.log import mask_secret

from ...outbound.webhooks import Caller, call_webhooks, resume_webhooks
from ...request.request import PrivacyRequest
from ..hitl import asker, resume_url
from ..hooks import http_post
from .base import PrivacyRequestOperator


class WebhooksOperator(PrivacyRequestOperator):
    """A two-way pre-execution webhook that answers ``{"halt": true}`` parks this task (no worker slot held)
    until someone resumes it (Airflow UI or REST); the webhooks after it run then."""

    def __init__(self, *, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, int]:
        return {"called": call_webhooks(request, self.step, self._caller(context))}

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> dict[str, int]:
        return {"called": resume_webhooks(request, self.step, event, self._caller(context))}

    def _caller(self, context: Context) -> Caller:
        return Caller(post=http_post, ask=asker(context), resume_url=resume_url(context), protect=mask_secret,
                      try_number=context["ti"].try_number)
