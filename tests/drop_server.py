"""A stand-in for the DROP Data Broker API on 127.0.0.1 (port 0): it enforces the X-API-KEY header, serves a
queue of download answers and records every upload and amend (file names and contents)."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from email.parser import BytesParser
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_zip(files: dict[str, str]) -> bytes:
    """A download ZIP from {file name: CSV text}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


class DropServer:
    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.downloads: list[tuple[int, bytes | dict]] = []  # answers of GET /data/download, in order
        self.uploads: list[tuple[str, dict[str, str]]] = []  # (path, {file name: content})
        self.unauthorized = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _authorized(self) -> bool:
                if self.headers.get("X-API-KEY") != server.api_key:
                    server.unauthorized += 1
                    self._send(401, {"message": "Unauthorized"})
                    return False
                return True

            def _send(self, status: int, body: bytes | dict) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/zip" if isinstance(body, bytes) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path != "/data/download":
                    self._send(404, {"message": "Not Found"})
                    return
                status, body = server.downloads.pop(0) if server.downloads else (200, {"message": "No new data"})
                self._send(status, body)

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                message = BytesParser(policy=default).parsebytes(
                    f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw)
                files = {part.get_filename(): part.get_content() for part in message.iter_parts()
                         if part.get_param("name", header="content-disposition") == "files"}
                files = {k: v.decode() if isinstance(v, bytes) else v for k, v in files.items()}
                server.uploads.append((self.path, files))
                rows = sum(max(len(v.strip().splitlines()) - 1, 0) for v in files.values())
                self._send(202, {"acceptedCount": rows, "rejectedCount": 0, "accepted": list(files), "rejected": []})

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
