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
    import time

    cluster = world[0]
    note = None
    for _ in range(30):
        note = cluster.get(f"/api/v2/dags/privacy_request/dagRuns/{finished['access']}").get("note")
        if note:
            break
        time.sleep(1)
    assert note == "Complete: 12 row(s) found, 0 masked, 0 vendor email(s) sent."
