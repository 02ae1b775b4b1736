"""A failed request resumed by clearing through the REST API, under a real scheduler (LocalExecutor)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

SEND = "erasure_email_send.daycare_vendor"


def customer_rows(shop: Path) -> list[tuple]:
    with sqlite3.connect(shop) as con:
        return con.execute("SELECT * FROM customer ORDER BY id").fetchall()


def test_email_failure_resumed_by_a_rest_clear(world) -> None:
    cluster, smtp, shop, storage = world
    conf = {"policy": "default_erasure_policy", "identity": {"email": "jane@example.com"}, "request_id": "e2e-1"}
    smtp.stop()  # the SMTP server is down (other tests of the session may have started it)
    emails_before = len(smtp.received)
    cluster.trigger("e2e-1", conf)

    assert cluster.wait_for_run("e2e-1") == "failed"
    states = cluster.task_states("e2e-1")
    assert states[SEND] == ("failed", 1)
    assert states["finalize"][0] == "upstream_failed"
    masked = customer_rows(shop)
    assert masked[0][2] is None  # Jane's name was masked before the email step

    smtp.start()
    assert cluster.clear("e2e-1", [SEND]) == sorted([SEND, "post_webhooks", "finalize"])
    assert cluster.wait_for_run("e2e-1") == "success"

    after = cluster.task_states("e2e-1")
    assert after[SEND] == ("success", 2)
    upstream = {t: s for t, s in after.items() if t.startswith(("validate", "access.", "erasure.", "upload"))}
    assert all(try_number == 1 for _, try_number in upstream.values()), upstream
    assert len(smtp.received) == emails_before + 1
    assert smtp.received[-1].envelope_to == ["privacy@daycare-vendor.example"]
    assert customer_rows(shop) == masked  # masked once: the hash was not applied a second time
    report = json.loads((storage / "e2e-1" / "report.json").read_text())
    assert [e["checkpoint"] for e in report["events"] if e["event"] == "checkpoint_failed"] == [SEND]
    assert report["emails_sent"] == 1
