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

from include.privacy_requests.drop.hashing import hash_field, list_hash


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


# The regulator's first download of the engine and DAG tests: hashes of the subjects in tests/drop_config.
HEAD = "ID,Hash\r\n"


def email(value: str) -> str:
    return hash_field("email", value) or ""


def first_download() -> bytes:
    ndz = list_hash("NDZ", {"first_name": "danielle", "last_name": "JOHNSON", "dob": "1985-07-04",
                            "zip": "91790"})
    return make_zip({
        "20261201_4821_Email.csv": HEAD + "".join(f"{i},{h}\r\n" for i, h in [
            ("EMAIL0000001", email("anna.smith@domain.com")), ("EMAIL0000002", email("shared@family.example")),
            ("EMAIL0000003", email("kept@loans.example")), ("EMAIL0000004", email("nobody@nowhere.example")),
            ("EMAIL0000005", email("later@example.com"))]) + "bad-row,xyz\r\n",
        "20261201_4821_Phone.csv": HEAD + f"PHONE0000001,{hash_field('phone', '+1(415)555-9317')}\r\n",
        "20261201_4821_NDZ.csv": HEAD + f"NDZ000000001,{ndz}\r\n",
        "20261201_4821_MAID.csv": HEAD + f"MAID00000001,{hash_field('maid', '6d92078a82464ba4ae5b76104861e7dc')}\r\n",
        "20261201_4821_CTVID.csv": HEAD,
        "20261201_4821_NameVIN.csv": HEAD,
    })
