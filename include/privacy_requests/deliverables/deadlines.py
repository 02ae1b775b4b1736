"""Which requests are still open close to their legal due date, and which DROP downloads are not yet answered
close to theirs (45 days after the download), read from the request store."""

from __future__ import annotations

import json
from datetime import date, datetime
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


def drop_due_soon(root: StoragePath, key: str, now: datetime, days_before_due: int) -> list[dict[str, Any]]:
    """DROP runs whose download is not answered yet (no ``drop_report.json``: drop_respond has not written the
    response files) and is due within ``days_before_due`` days, not alerted about yet. The due date is the one
    drop_receive recorded: the download's date plus ``drop.due_days`` (45). A run that received no download
    has no list to answer and is left out."""
    result: list[dict[str, Any]] = []
    runs = root / layout.DROP
    if not runs.exists():
        return result
    for folder in sorted(runs.iterdir(), key=lambda p: p.name):
        if not folder.name.startswith("run-") or (folder / layout.DROP_RUN_REPORT).exists():
            continue
        store = RequestStore(runs, folder.name, key)
        if store.exists(layout.DEADLINE_ALERT):
            continue
        meta = store.get(layout.DROP_DOWNLOAD)
        if not meta or not meta.get("download_date"):
            continue
        days_left = (date.fromisoformat(meta["due"]) - now.date()).days
        if days_left <= days_before_due:
            result.append({"request_id": f"DROP download of {meta['download_date']}", "drop_run": folder.name,
                           "policy": "DROP deletion lists: answer every work item", "due": meta["due"],
                           "days_left": days_left, "overdue": days_left < 0})
    return result


def mark_alerted(root: StoragePath, key: str, item: dict[str, Any], now: datetime) -> None:
    """Record the alert in the request's (or the DROP run's) store, so each is alerted about once."""
    store = (RequestStore(root / layout.DROP, item["drop_run"], key) if item.get("drop_run")
             else RequestStore(root, item["request_id"], key))
    store.put(layout.DEADLINE_ALERT, {"time": now.isoformat(), "due": item["due"]})


def default_alert_message(due: list[dict[str, Any]], days_before_due: int) -> dict[str, str]:
    """Subject and HTML for an email notifier; the configured kwargs may override either."""
    rows = "".join(
        f"<li>{item['request_id']} ({item['policy']}): due {item['due'][:10]}, "
        f"{'OVERDUE' if item['overdue'] else str(item['days_left']) + ' day(s) left'}</li>"
        for item in due)
    drops = sum(1 for item in due if item.get("drop_run"))
    requests = len(due) - drops
    what = " and ".join(part for part in (f"{requests} privacy request(s)" if requests else "",
                                          f"{drops} DROP download(s)" if drops else "") if part)
    return {
        "subject": f"{what} due within {days_before_due} day(s) and still open",
        "html_content": f"<p>These are still open:</p><ul>{rows}</ul>"
                        "<p>Open the requests under Browse, Privacy requests in Airflow; a DROP download is "
                        "answered by its privacy_drop run's drop_respond task.</p>",
    }
