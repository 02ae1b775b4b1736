"""Mailchimp's Marketing API as its reference documents it (https://mailchimp.com/developer/marketing/api/):
HTTP basic authentication with any user name and the API key as the password; ``GET /3.0/search-members?query=``
answers ``{"exact_matches": {"members": [...]}, "full_search": {...}}``; a list member is addressed by the MD5
hash of its lower-cased email address (``/3.0/lists/{list_id}/members/{subscriber_hash}``); ``PUT`` adds or
updates (a new member needs ``status_if_new``); notes are paged with ``count`` and ``offset``; unknown
resources are 404 problem documents."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .base import Call, FakeVendor, Reply


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def _problem(status: int, title: str) -> Reply:
    return Reply(status, {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title,
                          "status": status, "detail": title, "instance": ""})


class MailchimpApi(FakeVendor):
    def __init__(self, api_key: str = "0123456789abcdef-us6") -> None:
        super().__init__()
        self.api_key = api_key
        self.members: dict[tuple[str, str], dict[str, Any]] = {}
        self.notes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.lists = {"list1", "list2"}

    def add_member(self, list_id: str, email: str, first: str, last: str, notes: int = 0) -> dict[str, Any]:
        h = subscriber_hash(email)
        member = {"id": h, "email_address": email, "unique_email_id": h[:10], "list_id": list_id,
                  "status": "subscribed", "full_name": f"{first} {last}",
                  "merge_fields": {"FNAME": first, "LNAME": last, "PHONE": "555-0100"}}
        self.members[(list_id, h)] = member
        self.notes[(list_id, h)] = [{"id": i, "note": f"note {i} about {first}", "list_id": list_id, "email_id": h}
                                    for i in range(notes)]
        return member

    def authorized(self, call: Call) -> bool:
        import base64
        auth = call.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return False
        _, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return password == self.api_key

    def unauthorized(self) -> Reply:
        return _problem(401, "API Key Invalid")

    def route(self, call: Call) -> Reply:
        parts = call.path.strip("/").split("/")
        if parts == ["3.0", "lists"] and call.method == "GET":
            lists = [{"id": i, "name": f"Audience {i}"} for i in sorted(self.lists)]
            return Reply(200, {"lists": lists, "total_items": len(lists)})
        if parts == ["3.0", "search-members"] and call.method == "GET":
            query = call.query.get("query", "").lower()
            exact = [m for m in self.members.values() if m["email_address"].lower() == query]
            return Reply(200, {"exact_matches": {"members": exact, "total_items": len(exact)},
                               "full_search": {"members": [], "total_items": 0}})
        if len(parts) >= 5 and parts[:2] == ["3.0", "lists"] and parts[3] == "members":
            list_id, h = parts[2], parts[4]
            if list_id not in self.lists:
                return _problem(404, "Resource Not Found")
            if len(parts) == 6 and parts[5] == "notes" and call.method == "GET":
                if (list_id, h) not in self.members:
                    return _problem(404, "Resource Not Found")
                count, offset = int(call.query.get("count", 10)), int(call.query.get("offset", 0))
                notes = self.notes[(list_id, h)]
                return Reply(200, {"notes": notes[offset : offset + count], "total_items": len(notes)})
            if len(parts) == 5:
                return self._member(call, list_id, h)
        return _problem(404, "Resource Not Found")

    def _member(self, call: Call, list_id: str, h: str) -> Reply:
        key = (list_id, h)
        if call.method == "GET":
            return Reply(200, self.members[key]) if key in self.members else _problem(404, "Resource Not Found")
        if call.method == "DELETE":
            if key not in self.members:
                return _problem(404, "Resource Not Found")
            del self.members[key]
            return Reply(204)
        if call.method in ("PUT", "PATCH"):
            try:
                body = json.loads(call.body or b"{}")
            except ValueError:
                return _problem(400, "JSON Parse Exception")
            if key not in self.members:
                if call.method == "PATCH" or "status_if_new" not in body:
                    return _problem(404 if call.method == "PATCH" else 400, "Invalid Resource")
                self.members[key] = {"id": h, "list_id": list_id, "merge_fields": {}, "status": body["status_if_new"]}
            member = self.members[key]
            for name, value in body.items():
                if name == "merge_fields" and isinstance(value, dict):
                    member["merge_fields"] = {**member.get("merge_fields", {}), **value}
                elif name in ("email_address", "status", "full_name"):
                    member[name] = value
            return Reply(200, member)
        return _problem(405, "Method Not Allowed")
