"""Engine guards of a request: request ids that stay inside the storage, bounded identities, and one request
at a time per subject (in_flight), raced by threads as two workers would."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.policy import Webhook
from include.privacy_requests.outbound.webhooks import Reply, classify
from include.privacy_requests.request.request import MAX_IDENTITY_LENGTH, parse_conf, request_id_for
from include.privacy_requests.store import in_flight, layout
from include.privacy_requests.store.store import RequestStore


@pytest.mark.parametrize("run_id", [".", "..", "../x", "/", ".hidden", "-x", "a/../../b", "", "x" * 300])
def test_any_run_id_names_a_folder_strictly_inside_the_storage(tmp_path: Path, run_id: str) -> None:
    root = tmp_path / "storage"
    store = RequestStore(root, request_id_for(None, run_id), Fernet.generate_key())
    store.put("request.json", {"run_id": run_id})
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 1
    assert written[0].parent.parent == root and written[0].parent != root


@pytest.mark.parametrize("request_id", [".", "..", "a/b", "_subjects", "", "x" * 129])
def test_the_store_refuses_a_request_id_that_is_not_one_folder(tmp_path: Path, request_id: str) -> None:
    with pytest.raises(RequestError, match="cannot name a folder"):
        RequestStore(tmp_path, request_id, Fernet.generate_key())


def test_run_ids_that_are_already_safe_are_kept_as_they_are() -> None:
    assert request_id_for(None, "manual__2026-11-28T10:00:00+00:00") == "manual__2026-11-28T10_00_00_00_00"
    assert request_id_for("req-1", ".") == "req-1"


@pytest.mark.parametrize("identity, message", [
    ({"email": "a" * MAX_IDENTITY_LENGTH + "@example.com"}, "longer than 254 characters"),
    ({"email": "jane\x00@example.com"}, "control character"),
    ({"phone_number": "+1555\u2028"}, "control character"),
    ({"email\x00": "jane@example.com"}, "control character"),
    ({"email": 5}, "string"),
    ({"email": {"nested": "x"}}, "string"),
])
def test_oversized_and_control_character_identities_are_refused(identity: dict, message: str) -> None:
    with pytest.raises(RequestError, match=message) as error:
        parse_conf({"policy": "p", "identity": identity})
    assert "jane@example.com" not in str(error.value)  # the error names the field, never the value


def test_the_policy_is_required_and_bounded() -> None:
    with pytest.raises(RequestError, match="policy: Field required"):
        parse_conf({"identity": {"email": "jane@example.com"}})
    with pytest.raises(RequestError, match="policy: String should match"):
        parse_conf({"policy": "x" * 10_000, "identity": {"email": "jane@example.com"}})
    with pytest.raises(RequestError, match="expected a JSON object"):
        parse_conf(["policy"])


def finish(root: Path, request_id: str, status: str) -> None:
    (root / request_id).mkdir(parents=True, exist_ok=True)
    (root / request_id / "report.json").write_text(json.dumps({"status": status}))


def test_a_subject_is_held_by_one_open_request_and_freed_when_it_finishes(tmp_path: Path) -> None:
    subject = in_flight.fingerprint(Fernet.generate_key(), "erasure", {"email": "jane@example.com"})
    assert in_flight.claim(tmp_path, subject, "a") is None
    assert in_flight.claim(tmp_path, subject, "a") is None  # a cleared validate_request claims again
    assert in_flight.claim(tmp_path, subject, "b") == "a"
    finish(tmp_path, "a", "failed")
    assert in_flight.claim(tmp_path, subject, "b") is None  # a failed request no longer holds it
    assert in_flight.claim(tmp_path, subject, "a") == "b"
    finish(tmp_path, "b", "retrying")  # a failed try with a retry to come: still open
    assert in_flight.claim(tmp_path, subject, "c") == "b"
    finish(tmp_path, "b", "complete")
    in_flight.release(tmp_path, subject, "b")
    assert len(list((tmp_path / layout.SUBJECTS / subject).iterdir())) == 1  # the newest claim stays


def test_a_release_never_lets_two_newcomers_hold_one_subject(tmp_path: Path) -> None:
    """B read the finished holder A's claim (generation 0) and is about to write generation 1; meanwhile A
    releases and C claims. C must end up on generation 1 too, so that B's write fails and B looks again."""
    subject = in_flight.fingerprint(Fernet.generate_key(), "erasure", {"email": "jane@example.com"})
    assert in_flight.claim(tmp_path, subject, "a") is None
    finish(tmp_path, "a", "complete")
    in_flight.release(tmp_path, subject, "a")
    assert in_flight.claim(tmp_path, subject, "c") is None
    with pytest.raises(FileExistsError):  # B's prepared create-only-if-absent write of generation 1
        (tmp_path / layout.SUBJECTS / subject / f"{1:012d}.json").open("xb").close()
    assert in_flight.claim(tmp_path, subject, "b") == "c"


def test_the_fingerprint_is_keyed_and_ignores_case_but_not_policy() -> None:
    key = Fernet.generate_key()
    jane = in_flight.fingerprint(key, "erasure", {"email": "jane@example.com"})
    assert jane == in_flight.fingerprint(key, "erasure", {"email": " Jane@Example.com"})
    assert jane != in_flight.fingerprint(key, "access", {"email": "jane@example.com"})
    assert jane != in_flight.fingerprint(Fernet.generate_key(), "erasure", {"email": "jane@example.com"})
    assert "jane" not in jane


@pytest.mark.parametrize("finished_holder", [False, True])
def test_of_twenty_racing_requests_exactly_one_holds_the_subject(tmp_path: Path, finished_holder: bool) -> None:
    subject = in_flight.fingerprint(Fernet.generate_key(), "erasure", {"email": "jane@example.com"})
    if finished_holder:  # everyone races to take over from a finished request
        assert in_flight.claim(tmp_path, subject, "old") is None
        finish(tmp_path, "old", "complete")
    start = threading.Barrier(20)
    results: dict[str, str | None] = {}

    def contend(request_id: str) -> None:
        start.wait()
        results[request_id] = in_flight.claim(tmp_path, subject, request_id)

    threads = [threading.Thread(target=contend, args=(f"r{i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20  # no thread died (a claim being written is read as taken, not as junk)
    winners = [r for r, holder in results.items() if holder is None]
    assert len(winners) == 1
    assert all(holder == winners[0] for r, holder in results.items() if r != winners[0])


@pytest.mark.parametrize("derived", [{"phone_number": "1" * (MAX_IDENTITY_LENGTH + 1)},
                                     {"phone_number": "+1555\x00"}, {"email\n": "a@example.com"}])
def test_a_webhook_s_derived_identity_is_held_to_the_rules_of_a_conf_s_identity(derived: dict[str, str]) -> None:
    webhook = Webhook(name="enrich", conn_id="crm", direction="two_way")
    reply = Reply(200, json.dumps({"derived_identity": derived}).encode(), 0.1)
    with pytest.raises(RequestError, match="webhook 'enrich': derived_identity"):
        classify(webhook, reply)
    assert classify(webhook, Reply(200, b'{"derived_identity": {"phone_number": "+15555550100"}}', 0.1))
