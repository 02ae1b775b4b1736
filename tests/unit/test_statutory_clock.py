"""The statutory clock: due dates, the extensions each regulation allows (and refuses), CCPA's acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.dates import add_months
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.statutory_clock import acknowledge_by, due_date, extend, extensions
from include.privacy_requests.store import layout
from include.privacy_requests.store.store import RequestStore
from tests.support.paths import DEMO_CONFIG

KEY = Fernet.generate_key().decode()
RECEIVED = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> PrivacyConfig:
    return load_config(DEMO_CONFIG)


def store_for(tmp_path: Path, received: datetime = RECEIVED) -> RequestStore:
    store = RequestStore(tmp_path, "r-1", KEY)
    store.put(layout.REQUEST, {"request_id": "r-1", "run_id": "run-1", "received": received.isoformat()})
    return store


def test_months_end_on_the_last_day_of_a_shorter_month() -> None:
    assert add_months(RECEIVED, 1) == datetime(2026, 2, 28, 10, 0, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 30, tzinfo=UTC), 3) == datetime(2027, 2, 28, tzinfo=UTC)


def test_gdpr_extends_by_up_to_two_further_months_and_refuses_a_third(config: PrivacyConfig, tmp_path: Path) -> None:
    policy = config.policies["default_erasure_policy"]
    store = store_for(tmp_path)
    now = datetime(2026, 2, 10, tzinfo=UTC)
    first = extend(store, policy, reason="many systems to search", months=1, by="dpo", now=now)
    assert (first["previous_due"][:10], first["due"][:10]) == ("2026-02-28", "2026-03-28")
    extend(store, policy, reason="a vendor is slow", months=1, by="dpo", now=now)
    assert due_date(policy, RECEIVED, extensions(store)).date().isoformat() == "2026-04-28"
    with pytest.raises(RequestError, match="at most 2 further months and this request has had them"):
        extend(store, policy, reason="again", months=1, by="dpo", now=now)
    events = store.events()
    assert [(e["event"], e["months"], e["reason"], e["by"]) for e in events] == [
        ("deadline_extended", 1, "many systems to search", "dpo"), ("deadline_extended", 1, "a vendor is slow", "dpo")]


@pytest.mark.parametrize(("ask", "problem"), [
    ({"months": 3}, "'months' must be a whole number from 1 to 2"),
    ({"months": 0}, "from 1 to 2"),
    ({"months": "1"}, "from 1 to 2"),
    ({"days": 30}, "follows the GDPR: extend by 'months'"),
    ({"months": 1, "reason": " "}, "needs a reason"),
])
def test_a_gdpr_extension_the_regulation_does_not_allow_is_refused_and_nothing_is_written(
        config: PrivacyConfig, tmp_path: Path, ask: dict, problem: str) -> None:
    store = store_for(tmp_path)
    with pytest.raises(RequestError, match=problem):
        extend(store, config.policies["default_erasure_policy"], **{"reason": "r", **ask}, by="dpo",
               now=datetime(2026, 2, 1, tzinfo=UTC))
    assert extensions(store) == [] and store.events() == []


def test_ccpa_extends_once_by_45_days_and_acknowledges_within_10_business_days(
        config: PrivacyConfig, tmp_path: Path) -> None:
    policy = config.policies["access_and_erasure_policy"]
    received = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
    store = store_for(tmp_path, received)
    assert acknowledge_by(policy, received) == datetime(2026, 12, 11, 12, 0, tzinfo=UTC)  # two weeks on
    assert acknowledge_by(config.policies["default_erasure_policy"], received) is None
    with pytest.raises(RequestError, match="follows the CCPA: extend by 'days'"):
        extend(store, policy, reason="r", months=1, by="dpo", now=received)
    with pytest.raises(RequestError, match="'days' must be a whole number from 1 to 45"):
        extend(store, policy, reason="r", days=46, by="dpo", now=received)
    entry = extend(store, policy, reason="complex request", by="dpo", now=received)
    assert entry["days"] == 45 and entry["due"][:10] == "2027-02-25"  # 45 + 45 days after receipt
    with pytest.raises(RequestError, match="one extension of up to 45 days and this request has had it"):
        extend(store, policy, reason="again", days=1, by="dpo", now=received)


def test_no_extension_after_the_due_date_nor_of_a_closed_or_unknown_request(
        config: PrivacyConfig, tmp_path: Path) -> None:
    policy = config.policies["default_erasure_policy"]
    store = store_for(tmp_path)
    with pytest.raises(RequestError, match="the due date 2026-02-28 has passed"):
        extend(store, policy, reason="r", months=1, by="dpo", now=datetime(2026, 3, 1, tzinfo=UTC))
    store.write_public(layout.REPORT, ['{"status": "complete"}'])
    with pytest.raises(RequestError, match="is complete: its deadline no longer runs"):
        extend(store, policy, reason="r", months=1, by="dpo", now=datetime(2026, 2, 1, tzinfo=UTC))
    with pytest.raises(RequestError, match="has not been validated yet"):
        extend(RequestStore(tmp_path, "r-2", KEY), policy, reason="r", months=1, by="dpo")


def test_deadline_alerts_follow_the_extended_due_date(config: PrivacyConfig, tmp_path: Path) -> None:
    from include.privacy_requests.deliverables.deadlines import due_soon

    store = store_for(tmp_path)
    store.put(layout.REQUEST, {"request_id": "r-1", "run_id": "run-1", "received": RECEIVED.isoformat(),
                               "policy": "default_erasure_policy"})
    now = datetime(2026, 2, 25, tzinfo=UTC)  # three days before the month is up
    assert [d["request_id"] for d in due_soon(config, tmp_path, KEY, now, 5)] == ["r-1"]
    extend(store, config.policies["default_erasure_policy"], reason="complex", months=1, by="dpo", now=now)
    assert due_soon(config, tmp_path, KEY, now, 5) == []


def test_a_dry_run_has_no_legal_deadline_and_is_never_alerted(config: PrivacyConfig, tmp_path: Path) -> None:
    """A dry run that failed or stalled is no request of the subject's: the DPO is not notified about it."""
    from include.privacy_requests.deliverables.deadlines import due_soon

    store = store_for(tmp_path)
    store.put(layout.REQUEST, {"request_id": "r-1", "run_id": "run-1", "received": RECEIVED.isoformat(),
                               "policy": "default_erasure_policy", "dry_run": True})
    store.write_public(layout.REPORT, ['{"status": "failed"}\n'])
    assert due_soon(config, tmp_path, KEY, datetime(2026, 3, 25, tzinfo=UTC), 5) == []
