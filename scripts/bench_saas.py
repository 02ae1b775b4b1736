"""Benchmark (issue 22): one subject with 10,000 Stripe charges on the local fake Stripe (pages of 100):
records read and erased per second through the engine's steps, and the connector's overhead per request
beside a bare httpx loop making the same calls. Run: PYTHONPATH=. .venv/bin/python scripts/bench_saas.py"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.steps.collection_steps import access_collection, erase_collection
from include.privacy_requests.store import layout
from tests.support.saas_servers.harness import Harness, started
from tests.support.saas_servers.stripe import StripeApi

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
CONCURRENCY = int(sys.argv[2]) if len(sys.argv) > 2 else 4


def main() -> None:
    config = load_config(Path(__file__).resolve().parents[1] / "examples" / "saas")
    api = StripeApi().start()
    api.add_customer("cus_jane", "jane@example.com", "Jane Doe")
    for i in range(N):
        api.add_charge(f"ch_{i:06d}", "cus_jane", i, "jane@example.com")
    other = SimpleNamespace(host="unused", api_key="unused", token="unused")
    harness = Harness(config, {"stripe": api, "mailchimp": other, "shopify": other})
    harness.params["stripe"]["page_size"] = 100
    make = harness.connector_for

    def connector_for(dataset: str):
        connector = make(dataset)
        connector.concurrency = CONCURRENCY
        return connector

    harness.connector_for = connector_for  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as root:
        request = started(config, Path(root), "saas_erasure")
        access_collection(request, CollectionAddress("stripe", "customer"), harness.connector_for)
        calls = len(api.calls)
        t0 = time.perf_counter()
        access_collection(request, CollectionAddress("stripe", "charge"), harness.connector_for)
        read_s = time.perf_counter() - t0
        read_calls = len(api.calls) - calls
        rows = sum(1 for _ in request.store.read_rows(layout.rows(CollectionAddress("stripe", "charge"))))
        calls = len(api.calls)
        t0 = time.perf_counter()
        erase_collection(request, CollectionAddress("stripe", "charge"), harness.connector_for, 1)
        erase_s = time.perf_counter() - t0
        erase_calls = len(api.calls) - calls
    # The same calls from a bare httpx loop: the pages, then one form POST per charge (sequential).
    client = httpx.Client(timeout=10)
    base = f"http://{api.host}"
    auth = {"Authorization": f"Bearer {api.key}"}
    t0 = time.perf_counter()
    after = None
    bare_pages = 0
    while True:
        params = {"customer": "cus_jane", "limit": 100, **({"starting_after": after} if after else {})}
        data = client.get(base + "/v1/charges", params=params, headers=auth).json()["data"]
        bare_pages += 1
        if not data:
            break
        after = data[-1]["id"]
    bare_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(N):
        client.post(base + f"/v1/charges/ch_{i:06d}", content=b"receipt_email=", headers={
            **auth, "Content-Type": "application/x-www-form-urlencoded"})
    bare_post = time.perf_counter() - t0
    api.stop()
    print(f"records: {rows}; read {rows / read_s:,.0f} records/s ({read_calls} requests, {read_s:.2f} s); "
          f"erased {rows / erase_s:,.0f} records/s ({erase_calls} requests incl. the proof's re-read, "
          f"{erase_s:.2f} s, concurrency {CONCURRENCY}, {1000 * erase_s / erase_calls:.2f} ms/request)")
    print(f"bare httpx loop: pages {bare_read:.2f} s ({bare_pages} requests), {N} POSTs {bare_post:.2f} s "
          f"sequential = {1000 * bare_post / N:.2f} ms/request; connector read overhead "
          f"{1000 * (read_s - bare_read) / max(read_calls, 1):.2f} ms/request")


if __name__ == "__main__":
    main()
