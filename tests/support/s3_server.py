"""A real S3 HTTP endpoint on 127.0.0.1: moto's standalone server (``moto[server]``) in its own process.

moto because it runs from PyPI alone (MinIO would be a Go binary to fetch, with its own licence terms) and
implements what the store relies on: ``If-None-Match: *`` on PUT and on CompleteMultipartUpload answered
with 412 when the key exists. The server keeps everything in memory and is stopped by whoever started it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import requests

from tests.support.ports import free_port, stop_process

ACCESS_KEY, SECRET_KEY, REGION = "testing-key", "testing-secret", "us-east-1"


class S3Server:
    """``python -m moto.server`` on a free port; ``bucket()`` creates a bucket, ``connection_uri`` and
    ``connection_json`` give the Airflow ``aws`` connection that reaches it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.endpoint}/moto-api/", timeout=1)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError("moto's S3 server exited at start") from None
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("moto's S3 server did not come up in 30 s")

    def client(self) -> Any:  # a boto3 S3 client
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    @property
    def connection_json(self) -> str:
        """The Airflow connection (``AIRFLOW_CONN_<ID>``) with the credentials and the endpoint."""
        return json.dumps({"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
                           "extra": {"endpoint_url": self.endpoint, "region_name": REGION}})

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
