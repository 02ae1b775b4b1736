"""The statutory clock of a request: its legal due date, the extensions the regulation allows, and (CCPA) the
date by which receipt must be acknowledged.

GDPR Art. 12(3): one month, extendable "by two further months where necessary", the subject told why within
the first month. CCPA (Cal. Code Regs. tit. 11, 7021): 45 calendar days, extendable once by a further 45 days
with notice and a reason; receipt confirmed within 10 business days (7021(a)). An extension is an audit event
in the request's store and a create-only ledger entry, so two staff extending at once cannot both pass the cap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import RequestError
from ..model.dates import add_months
from ..store import layout

if TYPE_CHECKING:
    from ..model.policy import Policy
    from ..store.store import RequestStore

GDPR_MAX_EXTENSION_MONTHS = 2
CCPA_EXTENSION_DAYS = 45
CCPA_ACKNOWLEDGE_BUSINESS_DAYS = 10
MAX_REASON_LENGTH = 500


def extensions(store: RequestStore) -> list[dict[str, Any]]:
    """The request's extensions, oldest first."""
    return [store.get(name) for name in store.list(layout.EXTENSIONS)]


def due_date(policy: Policy, received: datetime, granted: Sequence[dict[str, Any]] = ()) -> datetime:
    """THE due date of a request, the one every page, alert, question and certificate shows: the policy's time
    limit (GDPR one calendar month, Art. 12(3); CCPA 45 days; or the policy's ``due_days``) from receipt, moved
    by every extension granted (``extensions(store)``)."""
    if policy.due_days:
        due = received + timedelta(days=policy.due_days)
    elif policy.regulation == "ccpa":
        due = received + timedelta(days=45)
    else:
        due = add_months(received, 1)
    for extension in granted:
        due = add_months(due, extension.get("months", 0)) + timedelta(days=extension.get("days", 0))
    return due


def request_due(store: RequestStore, policy: Policy) -> tuple[datetime, datetime] | None:
    """When the request in ``store`` was received and when it is due (extensions included); None before it
    was validated."""
    record = store.get(layout.REQUEST)
    if not record or not record.get("received"):
        return None
    received = datetime.fromisoformat(record["received"])
    return received, due_date(policy, received, extensions(store))


def acknowledge_by(policy: Policy, received: datetime) -> datetime | None:
    """CCPA: 10 business days (Monday to Friday) after receipt; None for other regulations."""
    if policy.regulation != "ccpa":
        return None
    moment, left = received, CCPA_ACKNOWLEDGE_BUSINESS_DAYS
    while left:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            left -= 1
    return moment


def extend(store: RequestStore, policy: Policy, *, reason: Any, months: Any = None, days: Any = None, by: str,
           now: datetime | None = None) -> dict[str, Any]:
    """Grant one extension, or raise RequestError naming what the regulation does not allow (nothing written).

    GDPR takes ``months`` (1 or 2, at most two in all); CCPA takes ``days`` (at most 45, once). The extension
    must be made before the current due date, and only while the request is open."""
    now = now or datetime.now(UTC)
    record = store.get(layout.REQUEST)
    if record is None:
        raise RequestError(f"request '{store.base.name}' has not been validated yet: nothing to extend")
    status = _status(store)
    if status in layout.CLOSED:
        raise RequestError(f"request '{record['request_id']}' is {status}: its deadline no longer runs")
    if not isinstance(reason, str) or not reason.strip():
        raise RequestError("an extension needs a reason (field 'reason'): the subject must be told why")
    if len(reason) > MAX_REASON_LENGTH:
        raise RequestError(f"the reason is {len(reason)} characters long; at most {MAX_REASON_LENGTH}")
    granted = extensions(store)
    received = datetime.fromisoformat(record["received"])
    due = due_date(policy, received, granted)
    if now > due:
        raise RequestError(f"the due date {due.date()} has passed: an extension must be made before it")
    entry = {"reason": reason.strip(), "by": by, "time": now.isoformat(), "previous_due": due.isoformat(),
             **_amount(policy, months, days, granted)}
    entry["due"] = (add_months(due, entry.get("months", 0)) + timedelta(days=entry.get("days", 0))).isoformat()
    if not store.create(f"{layout.EXTENSIONS}/{len(granted):03d}.json", entry):
        raise RequestError("another extension of this request was just recorded: reload and try again")
    store.add_event("deadline_extended", **entry)
    return entry


def _amount(policy: Policy, months: Any, days: Any, granted: list[dict[str, Any]]) -> dict[str, int]:
    """The extension asked for, checked against what the policy's regulation still allows."""
    if policy.regulation == "gdpr":
        if days is not None:
            raise RequestError(f"policy '{policy.key}' follows the GDPR: extend by 'months' (1 or 2), not 'days'")
        used = sum(e.get("months", 0) for e in granted)
        left = GDPR_MAX_EXTENSION_MONTHS - used
        if not _whole(months) or months < 1 or months > left:
            raise RequestError(f"the GDPR allows at most {GDPR_MAX_EXTENSION_MONTHS} further months in all; this "
                               f"request has {used} already, so 'months' must be a whole number from 1 to {left}"
                               if left else
                               f"the GDPR allows at most {GDPR_MAX_EXTENSION_MONTHS} further months and this "
                               "request has had them: no further extension")
        return {"months": months}
    if months is not None:
        raise RequestError(f"policy '{policy.key}' follows the CCPA: extend by 'days' (up to "
                           f"{CCPA_EXTENSION_DAYS}), not 'months'")
    if granted:
        raise RequestError(f"the CCPA allows one extension of up to {CCPA_EXTENSION_DAYS} days and this request "
                           "has had it: no further extension")
    days = CCPA_EXTENSION_DAYS if days is None else days
    if not _whole(days) or not 1 <= days <= CCPA_EXTENSION_DAYS:
        raise RequestError(f"the CCPA allows one extension of up to {CCPA_EXTENSION_DAYS} days: 'days' must be a "
                           f"whole number from 1 to {CCPA_EXTENSION_DAYS}")
    return {"days": days}


def _status(store: RequestStore) -> str | None:
    """report.json's status (written in clear), None while the request has none."""
    path = store.base / layout.REPORT
    if not path.exists():
        return None
    with path.open("rb") as fh:
        return json.loads(fh.read()).get("status")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
