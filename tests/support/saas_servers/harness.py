"""The SaaS connectors of the example datasets wired to the fake vendor APIs, and a started request: shared by
the SaaS unit tests and the SaaS benchmark (scripts/bench_saas.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from include.privacy_requests.connectors.saas import SaasConnector
from include.privacy_requests.connectors.saas_http import resolve_params
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.lifecycle import start_request
from include.privacy_requests.request.request import PrivacyRequest, open_request

KEY = Fernet.generate_key().decode()
JANE = "jane@example.com"


class Harness:
    """The connectors of the example datasets, on the fake servers; sleeps recorded, not slept."""

    def __init__(self, config: PrivacyConfig, servers: dict[str, Any]) -> None:
        self.config, self.servers, self.sleeps = config, servers, []
        self.client = httpx.Client(timeout=10)
        self.params = {
            "stripe": {"domain": servers["stripe"].host, "api_key": servers["stripe"].key, "page_size": 3},
            "mailchimp": {"domain": servers["mailchimp"].host, "api_key": servers["mailchimp"].api_key},
            "shopify": {"domain": servers["shopify"].host, "access_token": servers["shopify"].token, "page_size": 3},
        }
        self.erase_by = "update"

    def connector_for(self, dataset: str) -> SaasConnector:
        saas = self.config.saas[dataset]
        return SaasConnector(config=saas, dataset=dataset, params=resolve_params(saas, self.params[dataset], "t"),
                             client=self.client, declared=self.config.saas_declared[dataset], protocol="http",
                             erase_by=self.erase_by, sleep=self.sleeps.append, backoff_seconds=0.01)


def started(config: PrivacyConfig, root: Path, policy: str, request_id: str = "r-1", email: str = JANE,
            dry_run: bool = False) -> PrivacyRequest:
    conf = {"policy": policy, "identity": {"email": email}, "request_id": request_id, "dry_run": dry_run}
    request = open_request(config, conf, "run-1", root, KEY)
    start_request(request, "run-1", "2026-12-04T00:00:00+00:00")
    return request
