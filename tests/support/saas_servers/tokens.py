"""A small contacts API for the two authentication strategies the three vendors above do not use:
an API key in the query string (``?api_key=``), or OAuth 2.0 client credentials (RFC 6749 section 4.4:
``POST /oauth/token`` with ``grant_type=client_credentials`` and the client's id and secret, answering
``{"access_token", "token_type": "bearer", "expires_in"}``). Contacts are paged by ``page`` offset."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from .base import Call, FakeVendor, Reply


class TokenApi(FakeVendor):
    def __init__(self, mode: str, key: str = "k3y", client_id: str = "cid", client_secret: str = "s3cret") -> None:
        super().__init__()
        self.mode, self.key, self.client_id, self.client_secret = mode, key, client_id, client_secret
        self.tokens: list[str] = []
        self.contacts: list[dict[str, Any]] = []

    def authorized(self, call: Call) -> bool:
        if call.path == "/oauth/token":
            return True
        if self.mode == "query_param":
            return call.query.get("api_key") == self.key
        return call.headers.get("authorization", "").removeprefix("Bearer ") in self.tokens

    def route(self, call: Call) -> Reply:
        if call.path == "/oauth/token" and call.method == "POST":
            form = dict(parse_qsl(call.body.decode()))
            if (form.get("grant_type") != "client_credentials" or form.get("client_id") != self.client_id
                    or form.get("client_secret") != self.client_secret):
                return Reply(401, {"error": "invalid_client"})
            self.tokens.append(f"tok{len(self.tokens)}")
            return Reply(200, {"access_token": self.tokens[-1], "token_type": "bearer", "expires_in": 3600})
        if call.path == "/contacts" and call.method == "GET":
            size = int(call.query.get("per_page", 2))
            start = int(call.query.get("page", 0)) * size
            rows = [c for c in self.contacts if c["email"] == call.query.get("email")]
            return Reply(200, {"contacts": rows[start : start + size]})
        return Reply(404, {"error": "not found"})
