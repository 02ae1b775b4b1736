"""Which requests are still open close to their legal due date, read from the request store."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..model.settings import PrivacyConfig
from ..request.statutory_clock import due_date, extensions
from ..store import layout
from ..store.store import RequestStore, StoragePath, is_request_folder


def due_soon(config: PrivacyConfig, root: StoragePath, key: str, now: datetime,
             days_before_due: int) -> list[dict[str, Any]]:
    """Open requests (neither complete nor rejected) due within ``days_before_due`` days, not alerted about yet."""
    result = []
    if not root.exists():
        return result
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        if not is_request_folder(folder.name):
            continue
        store = RequestStore(root, folder.name, key)
        request = store.get(layout.REQUEST)
        if not request or request.get("dry_run") or store.exists(layout.DEADLINE_ALERT):
            continue  # a dry run is nobody's request: it has no legal deadline, and alerts nobody
        report = folder / layout.REPORT
        if report.exists() and json.loads(report.read_text())["status"] in layout.CLOSED:
            continue
        policy = config.policies.get(request["policy"])
        if policy is None:
            continue
        due = due_date(policy, datetime.fromisoformat(request["received"]), extensions(store))
        days_left = (due - now).total_seconds() / 86400
        if days_left <= days_before_due:
            result.append({"request_id": request["request_id"], "policy": policy.display_name,
                           "due": due.isoformat(), "days_left": int(days_left // 1),
                           "overdue": days_left < 0})
    return result


def default_alert_message(due: list[dict[str, Any]], days_before_due: int) -> dict[str, str]:
    """Subject and HTML for an email notifier; the configured kwargs may override either."""
    rows = "".join(
        f"<li>{item['request_id']} ({item['policy']}): due {item['due'][:10]}, "
        f"{'OVERDUE' if item['overdue'] else str(item['days_left']) + ' day(s) left'}</li>"
        for item in due)
    return {
        "subject": f"{len(due)} privacy request(s) due within {days_before_due} day(s) and still open",
        "html_content": f"<p>These privacy requests are still open:</p><ul>{rows}</ul>"
                        "<p>Open them under Browse, Privacy requests in Airflow.</p>",
    }
