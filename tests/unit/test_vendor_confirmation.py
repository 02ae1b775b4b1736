"""The vendor confirmation loop's rules, without Airflow: signed links, rounds, reminders, overdue, answers."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from include.privacy_requests.deliverables.overview import CONFIRMATION_TASK_PREFIX
from include.privacy_requests.errors import RequestError, TransientError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.outbound.vendor_confirmation import (
    ERASED,
    NOT_FOUND,
    REFUSED,
    Claims,
    Links,
    TokenRefused,
    answerable,
    check_note,
    close_overdue,
    make_token,
    next_step,
    open_round,
    read_token,
    record_answer,
    send_reminder,
    signing_key,
    vendor_responses,
)
from include.privacy_requests.request.asking import Answer
from include.privacy_requests.request.request import PrivacyRequest, open_request
from include.privacy_requests.store import layout
from tests.support.outbox import Outbox
from tests.support.paths import DEMO_CONFIG

KEY = Fernet.generate_key().decode()
VENDOR = "daycare_vendor"
SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> PrivacyConfig:
    """The demo with its vendor opted in: reminded every 7 days, overdue after 30."""
    folder = tmp_path_factory.mktemp("config") / "privacy"
    shutil.copytree(DEMO_CONFIG, folder, ignore=shutil.ignore_patterns("seed"))
    settings = yaml.safe_load((folder / "privacy.yml").read_text())
    settings["datasets"][VENDOR]["email"]["confirm"] = True
    (folder / "privacy.yml").write_text(yaml.safe_dump(settings))
    return load_config(folder)


@pytest.fixture
def request_(config: PrivacyConfig, tmp_path: Path) -> PrivacyRequest:
    """An erasure request whose vendor email went out at SENT."""
    request = open_request(config, {"policy": "default_erasure_policy", "identity": {"email": "jane@example.com"},
                                    "request_id": "r-1"}, "run-1", tmp_path, KEY)
    request.store.put(layout.REQUEST, {"request_id": "r-1", "run_id": "run-1", "received": SENT.isoformat()})
    request.store.put(layout.email_sent(VENDOR), {"time": SENT.isoformat(), "message_id": "<m1@example.com>"})
    return request



def test_a_genuine_token_reads_back_and_every_tampering_is_refused() -> None:
    key = signing_key(KEY)
    claims = Claims("r-1", VENDOR, 1, SENT + timedelta(days=30))
    token = make_token(key, claims)
    assert read_token(key, token, SENT) == claims
    payload, signature = token.split(".")
    forged = make_token(key, Claims("r-2", VENDOR, 1, SENT + timedelta(days=30))).split(".")[0] + "." + signature
    for bad in (forged, payload + "." + signature[::-1], "garbage", "", token + "x"):
        with pytest.raises(TokenRefused):
            read_token(key, bad, SENT)
    with pytest.raises(TokenRefused, match="bad signature"):  # signed with another deployment's key
        read_token(signing_key(Fernet.generate_key().decode()), token, SENT)
    with pytest.raises(TokenRefused, match="expired"):
        read_token(key, token, SENT + timedelta(days=30))


def test_a_token_is_decoded_strictly_junk_appended_or_inserted_is_refused() -> None:
    """Only the exact token the link carries answers: base64 decoded with validation, the signature exactly
    32 bytes, each part in its canonical spelling, one separator."""
    key = signing_key(KEY)
    token = make_token(key, Claims("r-1", VENDOR, 1, SENT + timedelta(days=30)))
    payload, signature = token.split(".")
    middle = len(signature) // 2
    junk = [token + "!", token + "==", token + "%00", token + " ", token + "\n", token + ".x", token + "AAAA",
            payload + "!." + signature, payload[:5] + "*" + payload[5:] + "." + signature,
            payload + "." + signature[:middle] + "$$" + signature[middle:], payload + ".." + signature,
            payload + "=." + signature, payload + "." + signature + "=", " " + token,
            payload + "." + signature[:-1], payload + "." + signature + "A",
            payload.replace("-", "+").replace("_", "/") + "." + signature.replace("-", "+").replace("_", "/"),
            "a" * 5000 + "." + signature]
    last = signature[-1]  # the last character's unused low bits: another spelling of the same bytes
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) ^ 1]
    junk.append(payload + "." + signature[:-1] + sibling)
    for bad in junk:
        if bad == token:
            continue
        with pytest.raises(TokenRefused):
            read_token(key, bad, SENT)
    assert read_token(key, token, SENT).request_id == "r-1"


def test_a_note_is_checked_like_an_identity_no_control_character_and_bounded() -> None:
    assert check_note("  phoned on Monday ") == "phoned on Monday"
    assert check_note("") is None and check_note(None) is None
    assert check_note("erased\nall records\tdone") == "erased\nall records\tdone"  # line breaks and tabs kept
    for bad in ("nul\u0000byte", "bell\u0007", "esc\u001b[31m", "\u0085next line", "\ud800 lone surrogate",
                "x" * 1001, "line\u2028separator"):
        with pytest.raises(RequestError) as refused:
            check_note(bad)
        assert bad not in str(refused.value)  # the message says what is wrong, never echoes the note


def test_the_link_is_the_page_with_a_token_for_the_round() -> None:
    links = Links(signing_key(KEY), "https://airflow.example.com/privacy-vendor/confirm")
    url = links("r-1", VENDOR, 2, SENT + timedelta(days=1))
    page, _, token = url.partition("?token=")
    assert page == "https://airflow.example.com/privacy-vendor/confirm"
    assert read_token(signing_key(KEY), token, SENT).round == 2


def test_reminders_fall_due_every_remind_every_and_the_round_is_overdue_after_overdue_after(
        config: PrivacyConfig, request_: PrivacyRequest) -> None:
    target = config.mapping(VENDOR).email
    store = request_.store
    wait = open_round(store, VENDOR, store.get(layout.email_sent(VENDOR)), SENT + timedelta(days=1))
    assert (wait.round, wait.started) == (1, SENT)
    step = next_step(store, VENDOR, wait, target, SENT + timedelta(days=1))
    assert (step.kind, step.timeout) == ("wait", timedelta(days=6))  # the first reminder is due on day 7
    assert next_step(store, VENDOR, wait, target, SENT + timedelta(days=8)).number == 1
    outbox = Outbox()
    links = Links(signing_key(KEY), "http://127.0.0.1/privacy-vendor/confirm")
    assert send_reminder(request_, VENDOR, wait, 1, links=links, sender=lambda: "privacy@example.com", send=outbox)
    assert not send_reminder(request_, VENDOR, wait, 1, links=links, sender=lambda: "p@example.com", send=outbox)
    assert len(outbox.sent) == 1  # never twice
    reminder = outbox.sent[0]
    assert reminder["In-Reply-To"] == "<m1@example.com>" and reminder["To"] == "privacy@daycare-vendor.example"
    assert "jane" not in reminder.as_string()
    assert "http://127.0.0.1/privacy-vendor/confirm?token=" in reminder.get_body(("plain",)).get_content()
    step = next_step(store, VENDOR, wait, target, SENT + timedelta(days=8))
    assert (step.kind, step.timeout) == ("wait", timedelta(days=6))
    step = next_step(store, VENDOR, wait, target, SENT + timedelta(days=29))  # reminder 4 is due; 1 day left
    assert (step.kind, step.number) == ("remind", 4)
    assert next_step(store, VENDOR, wait, target, SENT + timedelta(days=30)).kind == "overdue"


def test_a_reminder_the_server_refused_may_be_sent_again(config: PrivacyConfig, request_: PrivacyRequest) -> None:
    store = request_.store
    wait = open_round(store, VENDOR, store.get(layout.email_sent(VENDOR)), SENT)
    outbox = Outbox()
    outbox.fail = TransientError("SMTP down")
    links = Links(signing_key(KEY), "http://127.0.0.1/c")
    with pytest.raises(TransientError):
        send_reminder(request_, VENDOR, wait, 1, links=links, sender=lambda: "p@example.com", send=outbox)
    outbox.fail = None
    assert send_reminder(request_, VENDOR, wait, 1, links=links, sender=lambda: "p@example.com", send=outbox)
    assert [e["event"] for e in store.events()] == ["vendor_reminder_sent"]


def test_overdue_closes_the_round_once_and_a_clear_opens_the_next_with_a_reminder_at_once(
        config: PrivacyConfig, request_: PrivacyRequest) -> None:
    target = config.mapping(VENDOR).email
    store = request_.store
    sent = store.get(layout.email_sent(VENDOR))
    wait = open_round(store, VENDOR, sent, SENT + timedelta(days=31))
    token = make_token(signing_key(KEY), Claims("r-1", VENDOR, 1, SENT + timedelta(days=30)))
    assert answerable(store, read_token(signing_key(KEY), token, SENT)) == sent
    assert close_overdue(store, VENDOR, wait, target)
    assert not close_overdue(store, VENDOR, wait, target)  # the DPO is told once per round
    with pytest.raises(TokenRefused, match="round 1 is over"):
        answerable(store, Claims("r-1", VENDOR, 1, SENT + timedelta(days=30)))
    cleared = SENT + timedelta(days=40)
    again = open_round(store, VENDOR, sent, cleared)
    assert (again.round, again.started) == (2, cleared)
    assert (next_step(store, VENDOR, again, target, cleared).kind,
            next_step(store, VENDOR, again, target, cleared).number) == ("remind", 0)
    assert answerable(store, Claims("r-1", VENDOR, 2, cleared + timedelta(days=30))) == sent
    kinds = [e["event"] for e in store.events()]
    assert kinds == ["vendor_confirmation_overdue", "vendor_confirmation_reopened"]


def test_a_final_answer_is_recorded_once_with_its_response_time_and_then_no_link_answers(
        config: PrivacyConfig, request_: PrivacyRequest) -> None:
    store = request_.store
    wait = open_round(store, VENDOR, store.get(layout.email_sent(VENDOR)), SENT)
    answered = SENT + timedelta(days=2, hours=3)
    entry = record_answer(request_, VENDOR, Answer(NOT_FOUND, {"note": " no such customer "}, "Happy Days"), wait,
                          answered)
    assert (entry["answer"], entry["note"], entry["by"]) == ("not_found", "no such customer", "Happy Days")
    assert entry["response_seconds"] == int(timedelta(days=2, hours=3).total_seconds())
    assert store.get(layout.confirmation(VENDOR)) == entry
    with pytest.raises(TokenRefused, match="already answered"):  # a replayed link
        answerable(store, Claims("r-1", VENDOR, 1, SENT + timedelta(days=30)))
    assert vendor_responses(config, store) == [{"dataset": VENDOR, "vendor": "Happy Days Daycare",
                                                "answer": "not_found", "days": 2.1}]


def test_a_refusal_fails_the_step_and_closes_the_round(config: PrivacyConfig, request_: PrivacyRequest) -> None:
    store = request_.store
    wait = open_round(store, VENDOR, store.get(layout.email_sent(VENDOR)), SENT)
    with pytest.raises(RequestError, match="refused to erase") as refused:
        record_answer(request_, VENDOR, Answer(REFUSED, {"note": "jane's contract"}, "Happy Days"), wait, SENT)
    assert "jane" not in str(refused.value)  # the vendor's note stays out of the error and the task log
    assert store.get(layout.confirmation(VENDOR)) is None
    assert store.exists(layout.confirmation_closed(VENDOR, 1))
    assert vendor_responses(config, store)[0]["answer"] == "awaiting vendor"
    with pytest.raises(RequestError, match="not an answer"):
        record_answer(request_, VENDOR, Answer("Maybe", {}, "x"), wait, SENT)
    again = open_round(store, VENDOR, store.get(layout.email_sent(VENDOR)), SENT + timedelta(days=3))
    assert again.round == 2  # settled with the vendor, the task cleared: they are asked again
    assert record_answer(request_, VENDOR, Answer(ERASED, {}, "Happy Days"), again, SENT)["answer"] == "erased"


def test_the_overview_prefix_is_the_task_group_of_the_dag() -> None:
    from include.privacy_requests.airflow.constants import CONFIRM_GROUP

    assert CONFIRMATION_TASK_PREFIX == f"{CONFIRM_GROUP}."
