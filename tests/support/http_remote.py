"""A real HTTP server on 127.0.0.1 standing in for the remote system behind policy webhooks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Remote:
    """Records every POST (path, JSON body, headers); answers each path from a queue of (status, body), then
    200 {}. Serves from a thread until ``stop``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.headers: list[dict[str, str]] = []
        self.answers: dict[str, list[tuple[int, dict]]] = {}
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                remote.calls.append((self.path, body))
                remote.headers.append(dict(self.headers))
                status, answer = (remote.answers.get(self.path) or [(200, {})]).pop(0)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
