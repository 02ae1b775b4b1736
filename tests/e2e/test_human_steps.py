"""Requests that wait for a person, under a real scheduler: a webhook's halt and its resume, manual approval
and rejection, and a manual collection answered through the REST API, as a remote system or a script would.

Answers wait until the scheduler has seen the parked worker exit: Airflow 3.3 fails a task answered sooner.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_airflow import AirflowCluster
from tests.support.cluster import HITL, airflow_world, answer
from tests.support.dag_runs import table
from tests.support.http_remote import Remote
from tests.support.smtp import SmtpServer

JANE = {"email": "jane@example.com"}
FORM = "access.paper_archive.membership_form"
FORM_ERASURE = "erasure.paper_archive.membership_form"


@pytest.fixture(scope="module")
def human(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowCluster, SmtpServer, Path, Path, Remote]]:
    """Its own Airflow: the demo plus a manual dataset (which would make every other test wait for a clerk)
    and policies whose two-way webhook may halt."""
    remote = Remote()
    overlay = Path(__file__).parent / "human_steps"
    with airflow_world(tmp_path_factory.mktemp("human"), overlay,
                       {"AIRFLOW_CONN_SCREENING_SERVICE": remote.url}) as (cluster, smtp, shop, storage):
        smtp.start()
        yield cluster, smtp, shop, storage, remote
    remote.stop()


def nothing_on_paper(cluster: AirflowCluster, run_id: str) -> None:
    """The clerk finds no membership form (every request of this Airflow asks about the paper archive)."""
    answer(cluster, run_id, FORM, "Confirm", {"rows": []})


def report(storage: Path, request_id: str) -> dict:
    return json.loads((storage / request_id / "report.json").read_text())


def events(storage: Path, request_id: str, kind: str) -> list[dict]:
    return [e for e in report(storage, request_id)["events"] if e["event"] == kind]


def test_a_halted_request_waits_for_its_resume_then_runs_the_remaining_webhooks(human) -> None:
    cluster, _, _, storage, remote = human
    remote.answers["/screen"] = [(200, {"halt": True})]
    cluster.trigger("halt-1", {"policy": "screened_access_policy", "identity": JANE, "request_id": "halt-1"})

    cluster.wait_for_task("halt-1", "pre_webhooks", "awaiting_input")  # parked: no worker slot, no trigger
    states = cluster.task_states("halt-1")
    assert states["access.demo_shop.customer"][0] is None  # nothing was read while halted
    assert remote.paths() == ["/screen"]
    resume_path = HITL.format(run="halt-1", task="pre_webhooks")
    assert remote.headers[0]["reply-to"].endswith(resume_path)  # the remote is told where to resume
    assert cluster.get(resume_path)["subject"] == "Privacy request halt-1 is halted by a webhook"
    page = cluster.session.get(f"{cluster.base}/privacy/requests/halt-1", timeout=10).text
    assert "Waiting for a person" in page and "/runs/halt-1/tasks/pre_webhooks/required_actions" in page

    answer(cluster, "halt-1", "pre_webhooks", "Resume", {"derived_identity": {}})
    nothing_on_paper(cluster, "halt-1")
    assert cluster.wait_for_run("halt-1") == "success"
    assert remote.paths() == ["/screen", "/notify"]  # the webhook after the halting one ran on resume
    assert cluster.task_states("halt-1")["pre_webhooks"] == ("success", 1)
    assert [e["webhook"] for e in events(storage, "halt-1", "request_halted")] == ["screening"]
    resumed = events(storage, "halt-1", "request_resumed")
    assert [(e["webhook"], e["by"]) for e in resumed] == [("screening", "admin")]
    package = json.loads((storage / "halt-1" / "access_package.json").read_text())
    assert package["demo_shop:customer"][0]["email"] == "jane@example.com"


def test_a_halt_nobody_resumes_fails_the_step_after_its_timeout(human) -> None:
    cluster, _, _, storage, remote = human
    remote.answers["/quick"] = [(200, {"halt": True})]
    cluster.trigger("halt-2", {"policy": "impatient_screening_policy", "identity": JANE, "request_id": "halt-2"})

    assert cluster.wait_for_run("halt-2") == "failed"  # halt_timeout PT5S, swept every 15 s (a loaded machine: longer)
    states = cluster.task_states("halt-2")
    assert states["pre_webhooks"][0] == "failed"
    assert states["access.demo_shop.customer"][0] == "upstream_failed"
    failure = report(storage, "halt-2")["failed_checkpoint"]
    assert failure["checkpoint"] == "pre_webhooks"
    assert "webhook 'quick_screening' halted the request and nobody resumed it within 5 s" in failure["message"]


def test_an_approved_request_runs_after_the_approval(human) -> None:
    cluster, _, shop, storage, _ = human
    before = table(shop, "customer")
    cluster.trigger("review-1", {"policy": "reviewed_erasure_policy", "identity": JANE, "request_id": "review-1"})

    cluster.wait_for_task("review-1", "approve_request", "awaiting_input")
    assert table(shop, "customer") == before  # nothing is touched before the approval
    answer(cluster, "review-1", "approve_request", "Approve", {"reason": "identity checked by phone"})
    nothing_on_paper(cluster, "review-1")

    assert cluster.wait_for_run("review-1") == "success"
    assert table(shop, "customer")[0][2] is None  # Jane's name was erased
    body = report(storage, "review-1")
    assert body["status"] == "complete"
    assert (body["review"]["event"], body["review"]["by"]) == ("request_approved", "admin")
    assert body["review"]["reason"] == "identity checked by phone"

    masked = table(shop, "customer")
    cluster.clear("review-1", ["approve_request"], only_failed=False)  # resume = clear: not asked again
    nothing_on_paper(cluster, "review-1")  # the whole request runs again, and the clerk is asked again
    assert cluster.wait_for_run("review-1") == "success"
    assert cluster.task_states("review-1")["approve_request"] == ("success", 2)
    assert table(shop, "customer") == masked
    assert len(events(storage, "review-1", "request_approved")) == 1


def test_a_rejected_request_ends_without_touching_data(human) -> None:
    cluster, smtp, shop, storage, _ = human
    before, emails = {t: table(shop, t) for t in ("customer", "orders")}, len(smtp.received)
    cluster.trigger("review-2", {"policy": "reviewed_erasure_policy", "identity": {"email": "ada@example.com"},
                                 "request_id": "review-2"})

    answer(cluster, "review-2", "approve_request", "Reject", {"reason": "duplicate of request review-1"})
    assert cluster.wait_for_run("review-2") == "success"
    states = cluster.task_states("review-2")
    assert states["approve_request"][0] == "success"
    assert {s for t, (s, _) in states.items() if t not in ("validate_request", "approve_request")} == {"skipped"}
    assert {t: table(shop, t) for t in ("customer", "orders")} == before
    assert len(smtp.received) == emails
    body = report(storage, "review-2")
    assert body["status"] == "rejected"
    assert body["review"]["by"] == "admin" and body["review"]["reason"] == "duplicate of request review-1"
    assert body["rows_found"] == 0 and body["rows_masked"] == 0
    page = cluster.session.get(f"{cluster.base}/privacy/requests/review-2", timeout=10).text
    assert "Rejected by admin" in page and "duplicate of request review-1" in page
    runs = cluster.get("/privacy/api/requests")
    assert next(r for r in runs if r["run_id"] == "review-2")["status"] == "rejected"


def test_a_manual_collection_is_answered_and_its_rows_flow_on(human) -> None:
    """The clerk finds Jane's form, which names a phone order no online record links to her."""
    cluster, _, shop, storage, _ = human
    with sqlite3.connect(shop) as con:
        con.execute("INSERT INTO orders VALUES (99, NULL, NULL, 18.0)")
    conf = {"policy": "access_and_erasure_policy", "identity": JANE, "request_id": "manual-1"}
    cluster.trigger("manual-1", conf)

    cluster.wait_for_task("manual-1", FORM, "awaiting_input")
    question = cluster.get(HITL.format(run="manual-1", task=FORM))
    assert "`email`: jane@example.com" in question["body"]
    assert set(question["params"]["rows"]["schema"]["items"]["properties"]) == {
        "member_number", "email", "name", "order_number", "signed_on"}
    form = {"member_number": "M-1001", "email": "jane@example.com", "name": "Jane Doe", "order_number": "99",
            "signed_on": "2019-05-01"}
    answer(cluster, "manual-1", FORM, "Confirm", {"rows": [form]})

    erasure = answer(cluster, "manual-1", FORM_ERASURE, "Confirm", {"records_erased": 1})
    assert erasure["chosen_options"] == ["Confirm"]
    assert cluster.wait_for_run("manual-1") == "success"

    package = json.loads((storage / "manual-1" / "access_package.json").read_text())
    # The package holds the fields the policy returns (user.*), not order_number or signed_on.
    assert package["paper_archive:membership_form"] == [{"member_number": "M-1001", "email": "jane@example.com",
                                                         "name": "Jane Doe"}]
    # Jane's two online orders, and the phone order (total 18.0) that only the paper form leads to.
    assert sorted(order["total"] for order in package["demo_shop:orders"]) == [12.0, 18.0, 42.5]
    body = report(storage, "manual-1")
    form_report = next(c for c in body["collections"] if c["collection"] == "paper_archive:membership_form")
    assert form_report["access"]["rows"] == 1 and form_report["erasure"]["masked"] == 1
    assert [(e["rows"], e["by"]) for e in events(storage, "manual-1", "manual_entry")] == [(1, "admin")]
    confirmed = events(storage, "manual-1", "manual_erasure_confirmed")
    assert [(e["records"], e["fields"], e["by"]) for e in confirmed] == [(1, ["name"], "admin")]
