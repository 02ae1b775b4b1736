"""A threaded HTTP server on 127.0.0.1, port 0, serving one fake vendor; started and stopped by the tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeVendor:
    """Subclasses implement ``authorized`` and ``route``. ``fail_next(status, n, retry_after)`` makes the next
    ``n`` requests (optionally only those whose path starts with ``on``) answer ``status``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.writes: list[Call] = []
        self._failures: list[tuple[int, str | None, str]] = []
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None
        self.delay = 0.0  # seconds each request takes (outside the lock: requests overlap)
        self.in_flight = self.max_in_flight = 0

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> FakeVendor:
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                url = urlsplit(self.path)
                call = Call(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                            {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                with vendor.lock:
                    vendor.in_flight += 1
                    vendor.max_in_flight = max(vendor.max_in_flight, vendor.in_flight)
                if vendor.delay:
                    threading.Event().wait(vendor.delay)
                try:
                    reply = vendor.dispatch(call)
                finally:
                    with vendor.lock:
                        vendor.in_flight -= 1
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    @property
    def host(self) -> str:
        assert self.server
        return f"127.0.0.1:{self.server.server_address[1]}"

    # -- behaviour --------------------------------------------------------------------------------------
    def fail_next(self, status: int, count: int = 1, retry_after: str | None = None, on: str = "") -> None:
        with self.lock:
            self._failures += [(status, retry_after, on)] * count

    def dispatch(self, call: Call) -> Reply:
        with self.lock:
            self.calls.append(call)
            if not self.authorized(call):
                return self.unauthorized()
            for index, (status, retry_after, on) in enumerate(self._failures):
                if call.path.startswith(on):
                    del self._failures[index]
                    return Reply(status, {"error": "injected"}, {"Retry-After": retry_after} if retry_after else {})
            reply = self.route(call)
            if call.method != "GET" and reply.status < 400:
                self.writes.append(call)
            return reply

    def authorized(self, call: Call) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        return Reply(401, {"error": "unauthorized"})

    def route(self, call: Call) -> Reply:
        raise NotImplementedError
