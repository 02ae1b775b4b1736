"""The rules behind dry runs and proof of erasure, without a database: the conf's flags, which values a plan
counts as changed, what counts as a masked value for each strategy, and the certificate's escaping."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from include.privacy_requests.connectors.verification import holds_masked_value
from include.privacy_requests.deliverables.overview import run_note
from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.masking import FieldMask, Masker, new_request_secrets
from include.privacy_requests.outbound.webhooks import Caller, Reply, call_webhooks
from include.privacy_requests.request.certificate import render_certificate
from include.privacy_requests.request.lifecycle import start_request
from include.privacy_requests.request.request import open_request, parse_conf
from include.privacy_requests.steps.erasure_plan import compare, would_change
from tests.support.paths import DEMO_CONFIG

SECRETS = new_request_secrets()


def mask(strategy: str, configuration: dict | None = None, length: int | None = None) -> FieldMask:
    return FieldMask(Masker(strategy, configuration or {}, SECRETS), length)


def test_the_conf_takes_dry_run_as_a_boolean_and_after_dry_run_as_a_request_id() -> None:
    conf = parse_conf({"policy": "p", "identity": {"email": "a@b.org"}, "dry_run": True})
    assert conf.dry_run is True and conf.after_dry_run is None
    assert parse_conf({"policy": "p", "identity": {"email": "a@b.org"}}).dry_run is False
    with pytest.raises(RequestError, match="dry_run: Input should be a valid boolean"):
        parse_conf({"policy": "p", "identity": {"email": "a@b.org"}, "dry_run": "yes"})
    with pytest.raises(RequestError, match="after_dry_run: String should match pattern"):
        parse_conf({"policy": "p", "identity": {"email": "a@b.org"}, "after_dry_run": "../other"})


def test_a_run_may_follow_only_a_dry_run_of_the_same_policy_and_subject(tmp_path: Path) -> None:
    config, key = load_config(DEMO_CONFIG), Fernet.generate_key().decode()
    jane = {"email": "jane@example.com"}

    def start(request_id: str, policy: str = "default_erasure_policy", identity: dict = jane, **conf):
        request = open_request(config, {"policy": policy, "identity": identity, "request_id": request_id, **conf},
                               f"run-{request_id}", tmp_path, key)
        return start_request(request, f"run-{request_id}", "2026-11-28T00:00:00+00:00")

    start("dry", dry_run=True)
    start("real", identity={"email": "john@example.com"})
    for request_id, conf, problem in [
        ("a", {"after_dry_run": "none-such"}, "after_dry_run: no request 'none-such' exists"),
        ("b", {"after_dry_run": "real"}, "after_dry_run: request 'real' is not a dry run"),
        ("c", {"after_dry_run": "dry", "identity": {"email": "john@example.com"}}, "for another policy or identity"),
        ("d", {"after_dry_run": "dry", "policy": "access_and_erasure_policy"}, "was for another policy or identity"),
        ("e", {"after_dry_run": "dry", "dry_run": True}, "a dry run cannot follow another dry run"),
    ]:
        with pytest.raises(RequestError, match=problem):
            start(request_id, **conf)
    # The dry run claimed no subject (a real run for Jane starts while it is open), and a run may follow it.
    assert start("f", identity={"email": "JANE@example.com"}, after_dry_run="dry")["request_id"] == "f"


@pytest.mark.parametrize(("field_mask", "value", "changes"), [
    (mask("null_rewrite"), "Jane", True),
    (mask("null_rewrite"), None, False),
    (mask("string_rewrite", {"rewrite_value": "X"}), "X", False),
    (mask("string_rewrite", {"rewrite_value": "X"}), None, True),  # a constant is written to every row
    (mask("hash"), "Jane", True),
    (mask("hash"), None, False),  # a per-row strategy leaves NULL as it is
    (mask("random_string_rewrite"), "Jane", True),
])
def test_a_plan_counts_the_values_masking_would_change(field_mask: FieldMask, value: str | None,
                                                      changes: bool) -> None:
    assert would_change(field_mask, value) is changes


def test_a_masked_value_is_recognized_for_every_strategy() -> None:
    for strategy, config in [("hash", {}), ("hmac", {}), ("aes_encrypt", {}),
                             ("string_rewrite", {"rewrite_value": "REDACTED"})]:
        field_mask = mask(strategy, config)
        assert holds_masked_value(field_mask, "jane", field_mask.apply("jane")), strategy
        assert not holds_masked_value(field_mask, "jane", "jane"), strategy
    hashed = mask("hash")
    assert not holds_masked_value(hashed, "jane", hashed.apply(hashed.apply("jane")))  # hashed twice
    assert holds_masked_value(mask("null_rewrite"), "jane", None)
    assert not holds_masked_value(mask("null_rewrite"), "jane", "jane")
    assert holds_masked_value(hashed, None, None) and not holds_masked_value(hashed, None, "x")


def test_a_random_string_is_checked_by_its_form() -> None:
    field_mask = mask("random_string_rewrite", {"length": 8, "format_preservation": {"suffix": "@x.org"}}, length=12)
    value = field_mask.apply("jane@example.com")
    assert len(value) == 12 and value.endswith("@x.o") and holds_masked_value(field_mask, "jane@example.com", value)
    assert not holds_masked_value(field_mask, "jane@example.com", "jane@exam.co")  # right length, wrong form
    assert not holds_masked_value(field_mask, "jane@example.com", "abcdefgh@x.org")  # not cut to the column
    assert not holds_masked_value(field_mask, "jane@example.com", None)


def test_compare_sets_each_collection_planned_against_masked() -> None:
    plan = {"collections": [{"collection": "a:b", "erasure": {"plan": {"rows": 2}}},
                            {"collection": "v:c", "erasure": {"plan": {"rows": None}}}]}
    real = {"collections": [{"collection": "a:b", "erasure": {"masked": 1}},
                            {"collection": "v:c", "erasure": {"status": "instructions_prepared"}}]}
    assert compare(plan, real) == [{"collection": "a:b", "planned": 2, "masked": 1, "same": False},
                                   {"collection": "v:c", "planned": None, "masked": None, "same": True}]


def test_the_certificate_escapes_everything_and_carries_the_reports_digest() -> None:
    hostile = "<script>alert(1)</script>"
    report = {"request_id": "r-1", "policy": "erase", "identity_types": ["email"], "status": "complete",
              "rows_found": 1, "rows_masked": 1,
              "collections": [{"collection": "shop:customer", "kind": "sql", "access": {"rows": 1},
                               "erasure": {"status": "complete", "masked": 1, "verified": 1}}],
              "events": [{"event": "email_sent", "dataset": "v", "recipients": [f"x{hostile}@v.org"],
                          "time": "t", "message_id": "<m@1>"},
                         {"event": "request_approved", "by": hostile, "time": "t", "reason": None},
                         {"event": "webhook_called", "step": "pre", "webhook": "w", "direction": "one_way",
                          "status": 200, "time": "t"}]}
    report_json = json.dumps(report)
    received = datetime(2026, 11, 1, tzinfo=UTC)
    html = render_certificate(organization=hostile, policy_name="Erase", report=report, report_json=report_json,
                              received=received, due=received + timedelta(days=30),
                              issued=received + timedelta(days=31))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert hashlib.sha256(report_json.encode()).hexdigest() in html
    assert "&lt;m@1&gt;" in html and 'class="missed"' in html
    assert "<td>1</td><td>1</td></tr>" in html.replace("\n", "").replace("    ", "")  # masked, verified


def test_the_run_note_of_a_dry_run_says_nothing_was_changed() -> None:
    report = {"status": "complete", "dry_run": True, "rows_found": 12, "rows_masked": 0, "rows_planned": 5,
              "emails_sent": 0, "emails_rendered": 1}
    assert run_note(report) == ("Dry run complete: 12 row(s) found, 5 would be masked, 1 email(s) rendered; "
                                "nothing was changed or sent.")


def test_a_dry_run_calls_no_webhook_and_plans_each_one(tmp_path: Path) -> None:
    """The remote could act on any call (or derive identities and keep them): a dry run calls none."""
    folder = tmp_path / "privacy"
    shutil.copytree(DEMO_CONFIG, folder, ignore=shutil.ignore_patterns("seed"))
    (folder / "policies" / "hooked.yml").write_text(yaml.safe_dump({"policy": [
        {"key": "hooked", "rules": [{"key": "a", "action": "access", "targets": ["user"]}],
         "webhooks": {"pre": [{"name": "before", "conn_id": "c", "direction": "two_way"}],
                      "post": [{"name": "after", "conn_id": "c", "endpoint": "/done"}]}}]}))
    request = open_request(load_config(folder), {"policy": "hooked", "identity": {"email": "jane@example.com"},
                                                 "dry_run": True}, "run-1", tmp_path / "storage",
                           Fernet.generate_key().decode())
    start_request(request, "run-1", "2026-11-28T00:00:00+00:00")
    calls: list[dict] = []

    def post(webhook, payload, headers) -> Reply:
        calls.append(payload)
        return Reply(200, b'{"derived_identity": {"phone_number": "+15555550100"}}', 0.01)

    caller = Caller(post=post, ask=lambda q: None, resume_url="", protect=lambda v: None, try_number=1)
    for _ in range(2):  # a cleared task plans nothing twice
        assert call_webhooks(request, "pre", caller) == 0
        assert call_webhooks(request, "post", caller) == 0
    assert calls == []
    planned = [(e["step"], e["webhook"], e["endpoint"], e["direction"]) for e in request.store.events()
               if e["event"] == "webhook_planned"]
    assert planned == [("pre", "before", "", "two_way"), ("post", "after", "/done", "one_way")]
    assert not request.store.exists("derived_identity.json")
