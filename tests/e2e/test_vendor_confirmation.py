"""The vendor confirmation loop and the statutory clock on a real Airflow: a vendor opens the link in the email
the SMTP server received, answers over plain HTTP (no Airflow login) and the run completes; forged, expired,
replayed and stale links get 403 and change nothing; an unanswered vendor is reminded, then overdue (the DPO
is notified), and a clear reminds and waits again. One cluster for the module, reminders every 25 s."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.fernet import Fernet

from include.privacy_requests.outbound.vendor_confirmation import Claims, make_token, signing_key
from scripts.local_airflow import AirflowCluster
from tests.support.cluster import HITL, airflow_world, token
from tests.support.paths import DEMO_CONFIG
from tests.support.smtp import Received, SmtpServer

VENDOR, VENDOR_ADDRESS = "daycare_vendor", "privacy@daycare-vendor.example"
TASK = f"vendor_confirmation.{VENDOR}"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/privacy-vendor/confirm\?token=[A-Za-z0-9_.%-]+")


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowCluster, SmtpServer, Path, str]]:
    """The demo with its vendor opted in (reminded every 25 s, overdue after 35 s); the timeout sweep every 2 s."""
    base = tmp_path_factory.mktemp("confirm")
    config = base / "confirming"
    shutil.copytree(DEMO_CONFIG, config, ignore=shutil.ignore_patterns("seed"))
    settings = yaml.safe_load((config / "privacy.yml").read_text())
    settings["retries"] = {"count": 0}
    settings["datasets"][VENDOR]["email"].update(confirm=True, remind_every="PT25S", overdue_after="PT35S")
    (config / "privacy.yml").write_text(yaml.safe_dump(settings))
    key = Fernet.generate_key().decode()
    with airflow_world(base, env={"PRIVACY_REQUESTS_CONFIG_DIR": str(config),
                                  "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": key,
                                  "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2"},
                       public=True) as (cluster, smtp, _, storage):
        smtp.start()
        # The request nobody answers starts first: its vendor runs overdue while the first test runs.
        cluster.trigger("confirm-2", {"policy": "access_and_erasure_policy",
                                      "identity": {"email": "john@example.com"}, "request_id": "confirm-2"})
        yield cluster, smtp, storage, key


def subject(mail: Received) -> str:
    """The Subject unfolded (a long one arrives folded, even before its first word)."""
    return " ".join(mail.message["Subject"].split())


def mails(smtp: SmtpServer, request_id: str, to: str = VENDOR_ADDRESS) -> list[Received]:
    return [m for m in smtp.received if to in m.envelope_to and request_id in subject(m)]


def reminders(smtp: SmtpServer, request_id: str) -> list[Received]:
    return [m for m in mails(smtp, request_id) if subject(m).startswith("Reminder: please confirm")]


def wait_for_mails(smtp: SmtpServer, request_id: str, count: int, to: str = VENDOR_ADDRESS,
                   timeout: float = 600) -> list[Received]:
    deadline = time.monotonic() + timeout
    while len(mails(smtp, request_id, to)) < count:
        assert time.monotonic() < deadline, f"{count} email(s) to {to} for {request_id} not received"
        time.sleep(0.5)
    return mails(smtp, request_id, to)


def link_in(mail: Received) -> str:
    found = LINK.findall(mail.part("text/plain"))
    assert len(found) == 1, mail.part("text/plain")
    return found[0]


def report(storage: Path, request_id: str) -> dict:
    return json.loads((storage / request_id / "report.json").read_text())


def test_the_vendor_confirms_through_the_link_and_the_request_completes(loop) -> None:
    cluster, smtp, storage, key = loop
    cluster.trigger("confirm-1", {"policy": "default_erasure_policy", "identity": {"email": "jane@example.com"},
                                  "request_id": "confirm-1"})
    cluster.wait_until_parked("confirm-1", TASK)
    [erasure_email] = wait_for_mails(smtp, "confirm-1", 1)
    link = link_in(erasure_email)
    assert link in erasure_email.part("text/html")
    assert cluster.task_states("confirm-1")["post_webhooks"][0] is None  # the request waits for the vendor
    waiting = {r["request_id"]: r for r in cluster.get("/privacy/api/requests")}["confirm-1"]
    assert waiting["status"] == "awaiting vendor"
    assert waiting["vendors"][0]["answer"] == "awaiting vendor"

    vendor = requests.Session()  # a vendor's browser: no Airflow login
    page = vendor.get(link, timeout=30)
    assert page.status_code == 200 and "Happy Days Daycare" in page.text and "confirm-1" in page.text
    assert erasure_email.message["Message-ID"] in page.text.replace("&lt;", "<").replace("&gt;", ">")
    assert "jane" not in page.text.lower()
    genuine = link.partition("?token=")[2]
    page_url = link.partition("?")[0]
    payload, _, signature = genuine.partition(".")
    signing = signing_key(key)
    future = datetime.now(UTC) + timedelta(hours=1)
    refused = {
        "forged": make_token(signing, Claims("confirm-1", VENDOR, 1, future)).partition(".")[0] + "." + signature,
        "another key": make_token(signing_key(Fernet.generate_key().decode()), Claims("confirm-1", VENDOR, 1, future)),
        "expired": make_token(signing, Claims("confirm-1", VENDOR, 1, datetime.now(UTC) - timedelta(seconds=1))),
        "another round": make_token(signing, Claims("confirm-1", VENDOR, 2, future)),
        "garbage": "not-a-token",
    }
    for why, bad in refused.items():
        assert vendor.get(page_url, params={"token": bad}, timeout=30).status_code == 403, why
        answer = vendor.post(page_url, data={"token": bad, "answer": "Erased"}, timeout=30)
        assert answer.status_code == 403, why
    assert cluster.get(HITL.format(run="confirm-1", task=TASK))["response_received"] is False  # nothing changed

    done = vendor.post(page_url, data={"token": genuine, "answer": "Erased", "note": "erased <b>today</b>"},
                       timeout=30)
    assert done.status_code == 200 and 'id="recorded"' in done.text
    replay = vendor.post(page_url, data={"token": genuine, "answer": "Refused"}, timeout=30)
    assert replay.status_code == 403
    assert cluster.wait_for_run("confirm-1") == "success"
    assert vendor.get(link, timeout=30).status_code == 403  # answered: the link is spent

    [confirmed] = [e for e in report(storage, "confirm-1")["events"] if e["event"] == "vendor_confirmed"]
    assert (confirmed["answer"], confirmed["by"], confirmed["note"]) == (
        "erased", "Happy Days Daycare (confirmation link)", "erased <b>today</b>")
    assert 0 < confirmed["response_seconds"] < 60
    row = {r["request_id"]: r for r in cluster.get("/privacy/api/requests")}["confirm-1"]
    assert row["status"] == "success" and row["vendors"][0]["answer"] == "erased"
    overview = cluster.session.get(f"{cluster.base}/privacy/", timeout=30).text
    assert "Happy Days Daycare: erased after" in overview and "<b>today" not in overview


def test_an_unanswered_vendor_is_reminded_then_overdue_and_a_clear_reminds_and_waits_again(loop) -> None:
    cluster, smtp, storage, _ = loop  # confirm-2 was triggered with the cluster's start
    first_link = link_in(wait_for_mails(smtp, "confirm-2", 1)[0])

    # The DPO extends the CCPA deadline over REST; a viewer may not, and a second extension is refused.
    extend = f"{cluster.base}/privacy-deadlines/requests/confirm-2"
    viewer = {"Authorization": f"Bearer {token(cluster, 'viewer')}"}
    assert requests.put(extend, json={"reason": "x", "days": 45}, headers=viewer, timeout=30).status_code == 403
    assert requests.put(extend, json={"reason": "x", "days": 45}, timeout=30).status_code == 401
    granted = cluster.session.put(extend, json={"reason": "many systems to search"}, timeout=30)
    assert granted.status_code == 200 and granted.json()["days"] == 45
    again = cluster.session.put(extend, json={"reason": "more", "days": 1}, timeout=30)
    assert again.status_code == 400 and "one extension of up to 45 days" in again.json()["detail"]
    row = {r["request_id"]: r for r in cluster.get("/privacy/api/requests")}["confirm-2"]
    received = datetime.fromisoformat(row["received"])
    assert row["due"][:10] == (received + timedelta(days=90)).date().isoformat()
    assert row["extended"] == "+45 day(s): many systems to search" and row["acknowledge_by"] is not None

    assert cluster.wait_for_run("confirm-2") == "failed"
    [reminder] = reminders(smtp, "confirm-2")  # at 25 s; overdue at 35 s
    assert reminder.message["In-Reply-To"] == mails(smtp, "confirm-2")[0].message["Message-ID"]
    [dpo] = wait_for_mails(smtp, "confirm-2", 1, to="dpo@example.com")
    assert subject(dpo) == "Privacy request confirm-2: vendor Happy Days Daycare is overdue"
    states = cluster.task_states("confirm-2")
    assert states[TASK][0] == "failed" and states["post_webhooks"][0] == "upstream_failed"
    assert "has not confirmed the erasure within 35 s" in report(storage, "confirm-2")["failed_checkpoint"]["message"]

    cluster.clear("confirm-2", [TASK])
    cluster.wait_until_parked("confirm-2", TASK)
    sent = reminders(smtp, "confirm-2")
    assert len(sent) == 2  # the clear reminded the vendor at once, with a new link
    assert requests.get(first_link, timeout=30).status_code == 403  # the first round is over
    assert requests.get(link_in(sent[-1]), timeout=30).status_code == 200
    # Staff answer for the vendor (they phoned) under Required actions / REST.
    cluster.patch(HITL.format(run="confirm-2", task=TASK),
                  {"chosen_options": ["Could not find the person"], "params_input": {"note": None}})
    assert cluster.wait_for_run("confirm-2") == "success"
    events = report(storage, "confirm-2")["events"]
    [confirmed] = [e for e in events if e["event"] == "vendor_confirmed"]
    assert (confirmed["answer"], confirmed["by"], confirmed["round"]) == ("not_found", "admin", 2)
    assert [e["event"] for e in events if e["event"].startswith("deadline")] == ["deadline_extended"]
    assert len(wait_for_mails(smtp, "confirm-2", 1, to="dpo@example.com")) == 1  # the DPO was told once
