"""Shopify's Admin REST API as its documentation describes it (https://shopify.dev/docs/api/admin-rest):
the access token in the ``X-Shopify-Access-Token`` header; resources wrapped in their name
(``{"customer": {...}}``, ``{"orders": [...]}``); cursor pagination by the ``Link`` response header
(``<...page_info=...>; rel="next"``), where a request with ``page_info`` may carry only ``limit``; an
unknown id is ``404 {"errors": "Not Found"}``; a customer with orders cannot be deleted (422)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from .base import Call, FakeVendor, Reply

PREFIX = "/admin/api/2024-01"


class ShopifyApi(FakeVendor):
    def __init__(self, token: str = "shpat_fake") -> None:
        super().__init__()
        self.token = token
        self.customers: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}

    def add_customer(self, ident: int, email: str, first: str, last: str) -> None:
        self.customers[ident] = {"id": ident, "email": email, "first_name": first, "last_name": last,
                                 "phone": None, "note": f"vip {first}", "orders_count": 0}

    def add_order(self, ident: int, customer: int, email: str) -> None:
        self.orders[ident] = {"id": ident, "email": email, "customer": {"id": customer}, "note": "leave at door",
                              "shipping_address": {"name": "somebody", "address1": f"{ident} road"}}
        self.customers[customer]["orders_count"] += 1

    def authorized(self, call: Call) -> bool:
        return call.headers.get("x-shopify-access-token") == self.token

    def unauthorized(self) -> Reply:
        return Reply(401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})

    def route(self, call: Call) -> Reply:
        if not call.path.startswith(PREFIX):
            return Reply(404, {"errors": "Not Found"})
        path = call.path[len(PREFIX):]
        if path == "/shop.json" and call.method == "GET":
            return Reply(200, {"shop": {"id": 1, "name": "Fake store"}})
        if path == "/customers/search.json" and call.method == "GET":
            wanted = call.query.get("query", "").removeprefix("email:")
            return self._page(call, "customers", [c for c in self.customers.values() if c["email"] == wanted])
        if path == "/orders.json" and call.method == "GET":
            rows = [o for o in self.orders.values() if str(o["customer"]["id"]) == call.query.get("customer_id")]
            return self._page(call, "orders", rows)
        for name, table in (("customers", self.customers), ("orders", self.orders)):
            if path.startswith(f"/{name}/") and path.endswith(".json"):
                try:
                    ident = int(path[len(name) + 2 : -5])
                except ValueError:
                    return Reply(404, {"errors": "Not Found"})
                return self._one(call, name[:-1], ident, table)
        return Reply(404, {"errors": "Not Found"})

    def _page(self, call: Call, name: str, rows: list[dict[str, Any]]) -> Reply:
        """Cursor pages: ``page_info`` encodes where the next page starts (and the original filter)."""
        limit = int(call.query.get("limit", 50))
        if "page_info" in call.query:
            if set(call.query) - {"page_info", "limit"}:
                return Reply(400, {"errors": "page_info: with page_info only limit and fields are allowed"})
            state = json.loads(base64.urlsafe_b64decode(call.query["page_info"]))
            start, query = state["start"], state["query"]
            call.query.update(query)
            return self._page_from(call, name, self._refilter(name, query), start, limit, query)
        query = {k: v for k, v in call.query.items() if k != "limit"}
        return self._page_from(call, name, rows, 0, limit, query)

    def _refilter(self, name: str, query: dict[str, str]) -> list[dict[str, Any]]:
        if name == "customers":
            return [c for c in self.customers.values() if c["email"] == query.get("query", "").removeprefix("email:")]
        return [o for o in self.orders.values() if str(o["customer"]["id"]) == query.get("customer_id")]

    def _page_from(self, call: Call, name: str, rows: list[dict[str, Any]], start: int, limit: int,
                   query: dict[str, str]) -> Reply:
        page = rows[start : start + limit]
        headers = {}
        if start + limit < len(rows):
            info = base64.urlsafe_b64encode(json.dumps({"start": start + limit, "query": query}).encode()).decode()
            url = f"http://{call.headers.get('host')}{call.path}?{urlencode({'limit': limit, 'page_info': info})}"
            headers["Link"] = f'<{url}>; rel="next"'
        return Reply(200, {name: page}, headers)

    def _one(self, call: Call, kind: str, ident: int, table: dict[int, dict[str, Any]]) -> Reply:
        if ident not in table:
            return Reply(404, {"errors": "Not Found"})
        if call.method == "GET":
            return Reply(200, {kind: table[ident]})
        if call.method == "DELETE":
            if kind == "customer" and any(o["customer"]["id"] == ident for o in self.orders.values()):
                return Reply(422, {"errors": {"base": ["Error deleting customer"]}})
            del table[ident]
            return Reply(200, {})
        if call.method == "PUT":
            try:
                body = json.loads(call.body)[kind]
            except (ValueError, KeyError, TypeError):
                return Reply(400, {"errors": {kind: "Required parameter missing or invalid"}})
            record = table[ident]
            for key, value in body.items():
                if key == "id":
                    continue
                if isinstance(value, dict) and isinstance(record.get(key), dict):
                    record[key] = {**record[key], **value}
                else:
                    record[key] = value
            return Reply(200, {kind: record})
        return Reply(406, {"errors": "Not Acceptable"})
