"""Stripe's API as its reference documents it (https://docs.stripe.com/api): secret key as a bearer token;
list endpoints return ``{"object": "list", "data": [...], "has_more": ...}``, newest first, ``limit`` (default
10, at most 100) and the cursor ``starting_after`` (an object id); updates are form-encoded POSTs whose empty
value unsets a field; deleting a customer answers ``{"id", "object", "deleted": true}``; an unknown id is a 404
``resource_missing``; a parameter Stripe does not know is a 400."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from .base import Call, FakeVendor, Reply

CUSTOMER_FIELDS = {"name", "email", "phone", "description", "address", "shipping", "metadata"}
CHARGE_FIELDS = {"description", "receipt_email", "metadata", "shipping"}


def _missing(kind: str, ident: str) -> Reply:
    return Reply(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                 "message": f"No such {kind}: '{ident}'"}})


def _form(body: bytes) -> dict[str, Any]:
    """Stripe's bracketed form fields (``address[line1]=x``) as nested objects; an empty value unsets."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value if value != "" else None
    return out


class StripeApi(FakeVendor):
    def __init__(self, key: str = "sk_test_fake") -> None:
        super().__init__()
        self.key = key
        self.customers: dict[str, dict[str, Any]] = {}  # insertion order = creation order
        self.charges: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()

    def add_customer(self, ident: str, email: str, name: str, phone: str | None = None) -> None:
        self.customers[ident] = {"id": ident, "object": "customer", "email": email, "name": name, "phone": phone,
                                 "description": None, "address": {"line1": f"{ident} street", "city": "Town"},
                                 "metadata": {}}

    def add_charge(self, ident: str, customer: str, amount: int, email: str) -> None:
        self.charges[ident] = {"id": ident, "object": "charge", "amount": amount, "customer": customer,
                               "receipt_email": email, "description": f"order {ident}",
                               "billing_details": {"email": email, "name": "card holder"}}

    def authorized(self, call: Call) -> bool:
        return call.headers.get("authorization") == f"Bearer {self.key}"

    def unauthorized(self) -> Reply:
        return Reply(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})

    def route(self, call: Call) -> Reply:
        parts = call.path.strip("/").split("/")
        if parts[:2] == ["v1", "customers"]:
            if len(parts) == 2 and call.method == "GET":
                rows = [c for c in self.customers.values() if "email" not in call.query
                        or c["email"] == call.query["email"]]
                return self._list(call, list(reversed(rows)), "/v1/customers")
            if len(parts) == 3:
                return self._one(call, parts[2], self.customers, "customer", CUSTOMER_FIELDS)
        if parts[:2] == ["v1", "charges"]:
            if len(parts) == 2 and call.method == "GET":
                rows = [c for c in self.charges.values() if c["customer"] == call.query.get("customer")]
                return self._list(call, list(reversed(rows)), "/v1/charges")
            if len(parts) == 3 and call.method != "DELETE":
                return self._one(call, parts[2], self.charges, "charge", CHARGE_FIELDS)
        return Reply(404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}})

    def _list(self, call: Call, rows: list[dict[str, Any]], url: str) -> Reply:
        unknown = set(call.query) - {"email", "customer", "limit", "starting_after", "ending_before"}
        if unknown:
            return Reply(400, {"error": {"type": "invalid_request_error",
                                         "message": f"Received unknown parameter: {sorted(unknown)[0]}"}})
        limit = int(call.query.get("limit", 10))
        if not 1 <= limit <= 100:
            return Reply(400, {"error": {"type": "invalid_request_error", "message": "Invalid integer: limit"}})
        start = 0
        if "starting_after" in call.query:
            ids = [r["id"] for r in rows]
            if call.query["starting_after"] not in ids:
                return _missing("object", call.query["starting_after"])
            start = ids.index(call.query["starting_after"]) + 1
        page = rows[start : start + limit]
        return Reply(200, {"object": "list", "url": url, "has_more": start + limit < len(rows), "data": page})

    def _one(self, call: Call, ident: str, table: dict[str, dict[str, Any]], kind: str, writable: set[str]) -> Reply:
        if call.method == "GET":
            if ident in self.deleted:
                return Reply(200, {"id": ident, "object": kind, "deleted": True})
            return Reply(200, table[ident]) if ident in table else _missing(kind, ident)
        if ident not in table:
            return _missing(kind, ident)
        if call.method == "DELETE":
            del table[ident]
            self.deleted.add(ident)
            return Reply(200, {"id": ident, "object": kind, "deleted": True})
        if call.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return Reply(400, {"error": {"type": "invalid_request_error", "message": "Invalid request: expected a "
                                         "form-encoded body"}})
        changes = _form(call.body)
        unknown = set(changes) - writable
        if unknown:
            return Reply(400, {"error": {"type": "invalid_request_error",
                                         "message": f"Received unknown parameter: {sorted(unknown)[0]}"}})
        record = table[ident]
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(record.get(key), dict):
                record[key] = {**record[key], **value}
            else:
                record[key] = value
        return Reply(200, record)
