"""The Privacy requests pages against real runs, as an admin sees them, and the run note (who may see what:
test_access_control.py)."""

from __future__ import annotations

from datetime import datetime


def test_overview_lists_each_request_with_its_deadline(world, finished) -> None:
    cluster = world[0]
    rows = {r["request_id"]: r for r in cluster.get("/privacy/api/requests")}
    access = rows[finished["access"]]
    assert access["status"] == "success"
    assert access["policy"] == "Access request (GDPR Art. 15)"
    assert access["identity"] == "j***@example.com"
    assert access["rows_found"] == 12 and access["rows_masked"] == 0
    received, due = datetime.fromisoformat(access["received"]), datetime.fromisoformat(access["due"])
    assert 28 <= (due - received).days <= 31  # GDPR: one calendar month
    erasure = rows[finished["erasure"]]
    assert erasure["rows_masked"] == 5 and erasure["emails_sent"] == 1
    assert finished["access"] not in {r["request_id"] for r in cluster.get("/privacy/api/requests", status="failed")}

    html = cluster.session.get(f"{cluster.base}/privacy/", timeout=10).text
    assert finished["access"] in html and "j***@example.com" in html
    assert "jane@example.com" not in html


def test_request_page_shows_timeline_collections_events_and_email(world, finished) -> None:
    cluster = world[0]
    response = cluster.session.get(f"{cluster.base}/privacy/requests/{finished['erasure']}", timeout=10)
    assert response.status_code == 200
    page = response.text
    assert "validate_request" in page and "erasure.demo_shop.customer" in page
    assert "demo_shop:address" in page and "collection_masked" in page
    assert "email_sent" in page
    assert "email: jane@example.com" in page and "Data erasure request" in page
    email = cluster.session.get(f"{cluster.base}/privacy/requests/{finished['erasure']}/emails/daycare_vendor",
                                timeout=10)
    assert email.status_code == 200 and "Values: jane@example.com" in email.text  # the email as sent
    assert cluster.session.get(f"{cluster.base}/privacy/requests/no-such-run", timeout=10).status_code == 404


def test_run_note_summarizes_the_outcome(world, finished) -> None:
    """The note is written by a listener once the run has ended: wait for it (a loaded machine may take long),
    never for a fixed time. The copy is whole: the erasure triggered after it waited for its package."""
    import time

    cluster = world[0]
    deadline = time.monotonic() + 300
    note = None
    while not note and time.monotonic() < deadline:
        note = cluster.polled(lambda: cluster.get(f"/api/v2/dags/privacy_request/dagRuns/{finished['access']}")
                              .get("note"))
        if not note:
            time.sleep(1)
    assert note == "Complete: 12 row(s) found, 0 masked, 0 vendor email(s) sent."


def test_the_erasure_triggered_after_the_access_request_masked_nothing_before_its_package(world, finished) -> None:
    """Asked for a copy, then for deletion, at once: whatever order the scheduler ran them in, the erasure
    masked nothing before the copy was written, so the copy is whole."""
    import json

    storage = world[3]
    package = storage / finished["access"] / "access_package.json"
    assert sum(len(rows) for rows in json.loads(package.read_text()).values()) == 12
    written = datetime.fromtimestamp(package.stat().st_mtime).astimezone()
    events = json.loads((storage / finished["erasure"] / "report.json").read_text())["events"]
    masked = [datetime.fromisoformat(e["time"]) for e in events if e["event"] == "collection_masked"]
    assert masked and min(masked) > written
    waits = [e["request"] for e in events if e["event"] == "waiting_for_access_request"]
    assert set(waits) <= {finished["access"]}


def test_a_run_id_airflow_cannot_serve_is_refused_at_the_trigger(world) -> None:
    """'.' matches Airflow's default run id pattern, yet its execution API cannot serve it (a task's XCom push
    gets a 307 after the request claimed its subject): the deployment's pattern refuses it before any run."""
    cluster = world[0]
    body = {"logical_date": None, "dag_run_id": ".", "conf": {"policy": "default_access_policy",
                                                              "identity": {"email": "ada@example.com"}}}
    response = cluster.session.post(f"{cluster.base}/api/v2/dags/privacy_request/dagRuns", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert "does not match regex pattern" in response.text
    runs = cluster.get("/api/v2/dags/privacy_request/dagRuns", limit=500)["dag_runs"]
    assert "." not in {r["dag_run_id"] for r in runs}
