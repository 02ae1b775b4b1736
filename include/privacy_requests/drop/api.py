"""The DROP Data Broker API: ``GET /data/download`` (the ZIP), ``POST /data/upload`` and ``POST /data/amend``
(response CSVs, multipart field ``files``), each with the ``X-API-KEY`` header. The base URL is configurable
(production ``https://api.drop.privacy.ca.gov``, the sandbox under ``/sandbox``, a local server in tests).

Errors map onto the engine's: a download still being prepared (202), too many requests (429), a server error
or a broken connection are transient (Airflow retries with backoff); a missing or wrong key (401), an
ineligible account (403), a wrong URL (404) or a state conflict (409) fail at once with the API's meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from ..errors import RequestError, TransientError

PRODUCTION_URL = "https://api.drop.privacy.ca.gov"
TIMEOUT = (10, 300)

_MEANING = {
    401: "the API key is missing or invalid: fix or regenerate it (the Airflow connection's password)",
    403: "the broker may not download (account, registration, payment or list selection): resolve it in the "
         "DROP portal",
    404: "the endpoint does not exist: check the API base URL",
    409: "DROP refuses in its current state (a previous download is not complete, or no download awaits "
         "responses)",
}


@dataclass
class DropApi:
    base_url: str
    api_key: str
    session: requests.Session | None = None

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        session = self.session or requests.Session()
        url = self.base_url.rstrip("/") + path
        try:
            reply = session.request(method, url, headers={"X-API-KEY": self.api_key,
                                                          "Accept": "application/zip, application/json"},
                                    timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise TransientError(f"DROP API {method} {path}: {type(exc).__name__}") from None
        if reply.status_code == 202 and path == "/data/download":
            raise TransientError("DROP is still preparing the download (202): will ask again")
        if reply.status_code == 429 or reply.status_code >= 500:
            raise TransientError(f"DROP API {method} {path} answered {reply.status_code}: will retry")
        if reply.status_code >= 400:
            meaning = _MEANING.get(reply.status_code, "unexpected answer")
            raise RequestError(f"DROP API {method} {path} answered {reply.status_code}: {meaning}")
        return reply

    def download(self) -> bytes | None:
        """The ZIP's bytes, or None when DROP has no new data (200 with a JSON message)."""
        reply = self._call("GET", "/data/download")
        if "zip" in reply.headers.get("Content-Type", "") or reply.content[:2] == b"PK":
            return reply.content
        return None

    def upload(self, files: dict[str, bytes], *, amend: bool = False) -> dict[str, Any]:
        """Send response CSVs (name -> content) as a new upload or an amend; DROP's answer (counts of accepted
        and rejected rows)."""
        reply = self._call("POST", "/data/amend" if amend else "/data/upload",
                           files=[("files", (name, content, "text/csv")) for name, content in files.items()])
        try:
            return reply.json()
        except ValueError:
            return {"status": reply.status_code}
