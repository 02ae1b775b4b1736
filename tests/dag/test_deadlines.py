"""The deadline alert: requests still open close to their due date are reported once, through the
configured notifier (SMTP here, to a real server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

JANE = {"email": "jane@example.com"}


def test_open_requests_near_their_due_date_are_alerted_once(run_request, config_folder, shop_db: Path,
                                                            storage: Path, smtp) -> None:
    from include.privacy_requests.airflow.dag_factory import build_deadlines_dag
    from include.privacy_requests.model.loading import load_config

    config_folder.write("policies/urgent.yml", {"policy": [
        {"key": "urgent_access", "due_days": 3,
         "rules": [{"key": "a", "action": "access", "targets": ["user"]}]},
        {"key": "urgent_erasure", "due_days": 3,
         "rules": [{"key": "e", "action": "erasure", "targets": ["user.childrens"],
                    "masking_strategy": {"strategy": "null_rewrite"}}]},
    ]})
    run_request("urgent_access", JANE, request_id="done-early")  # complete: no alert
    run_request("default_access_policy", JANE, request_id="far-off")  # a month left: no alert
    smtp.stop()
    _, failed, _ = run_request("urgent_erasure", JANE, request_id="stuck")  # fails at the vendor email
    assert failed.state == "failed"
    smtp.start()
    rejected_request(storage, "turned-down")  # rejected by a reviewer: closed, no alert

    dag = build_deadlines_dag(load_config(config_folder.path))
    assert dag.test().state == "success"
    assert len(smtp.received) == 1
    alert = smtp.received[0]
    assert alert.envelope_to == ["dpo@example.com"]
    assert "1 privacy request(s) due within 5 day(s)" in alert.message["Subject"]
    body = alert.part("text/html")
    assert "stuck" in body and "done-early" not in body and "far-off" not in body and "turned-down" not in body
    assert "jane@example.com" not in body

    assert dag.test().state == "success"
    assert len(smtp.received) == 1  # each request is alerted about once


def rejected_request(storage: Path, request_id: str) -> None:
    """What approve_request leaves when a reviewer rejects an urgent request (dag.test cannot ask a person)."""
    from airflow.sdk import ObjectStoragePath

    from include.privacy_requests.store.store import RequestStore

    store = RequestStore(ObjectStoragePath(f"file://{storage}"), request_id,
                         os.environ["AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY"])
    store.put("request.json", {"request_id": request_id, "policy": "urgent_access", "identity_types": ["email"],
                               "run_id": request_id, "received": datetime.now(UTC).isoformat()})
    store.write_public("report.json", [json.dumps({"status": "rejected"})])


def test_drop_downloads_not_answered_near_their_45_day_due_date_are_alerted_once(config_folder, storage: Path,
                                                                                 smtp, airflow_db) -> None:
    """A DROP download is due 45 days after its date: the deadline alert names one not yet answered within
    drop.alert_days_before_due days (4 here, the requests' 5 otherwise), once; an answered one, one with time
    left and one outside the DROP window are not named."""
    from datetime import timedelta

    from airflow.sdk import ObjectStoragePath

    from include.privacy_requests.airflow.dag_factory import build_deadlines_dag
    from include.privacy_requests.drop.run import DropRun, receive
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.store import layout
    from tests.support.drop_server import HEAD, email, make_zip

    config_folder.edit("privacy.yml", lambda d: d.update(drop={
        "broker_id": "4821", "policy": "default_erasure_policy", "folder": "file:///tmp/privacy-drop-unused",
        "alert_days_before_due": 4}))
    config = load_config(config_folder.path)
    root = ObjectStoragePath(f"file://{storage}")
    key = os.environ["AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY"]
    today = datetime.now(UTC).date()
    for run_id, age in (("near", 42), ("answered", 43), ("time-left", 30), ("five-days-left", 40)):
        day = (today - timedelta(days=age)).strftime("%Y%m%d")
        download = make_zip({f"{day}_4821_Email.csv": HEAD + f"EMAIL0000001,{email('anna.smith@domain.com')}\r\n"})
        run = DropRun(config, run_id, root, key)
        receive(run, download, datetime.now(UTC).isoformat())
        if run_id == "answered":  # drop_respond wrote its report: the download is answered
            run.store.write_public(layout.DROP_RUN_REPORT, ["{}\n"])

    dag = build_deadlines_dag(config)
    assert dag.test().state == "success"
    (alert,) = smtp.received
    assert "1 DROP download(s) due within 5 day(s)" in alert.message["Subject"]
    body = alert.part("text/html")
    near = (today - timedelta(days=42)).isoformat()
    assert f"DROP download of {near}" in body and "3 day(s) left" in body
    assert body.count("DROP download of") == 1  # not the answered one, nor those with 15 and 5 days left

    assert dag.test().state == "success"
    assert len(smtp.received) == 1  # each download is alerted about once
