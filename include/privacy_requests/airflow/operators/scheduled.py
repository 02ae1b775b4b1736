"""Scheduled checks across requests: deadline alerts (requests, and DROP downloads not yet answered)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context

from ...deliverables.deadlines import default_alert_message, drop_due_soon, due_soon, mark_alerted
from ...model.settings import PrivacyConfig
from ..hooks import store_key
from ..notify import dpo_notifier
from ..storage import storage_root


class DeadlineCheckOperator(BaseOperator):
    """Notifies about requests still open ``days_before_due`` before their legal due date, and about DROP
    downloads not answered ``drop.alert_days_before_due`` (default the same) before theirs, once each.

    It reads the request store, not Airflow's metadata, so it sees every request, however it ended.
    """

    template_fields: Sequence[str] = ()

    def __init__(self, *, privacy_config: PrivacyConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.privacy_config = privacy_config

    def execute(self, context: Context) -> dict[str, int]:
        config = self.privacy_config
        alert = config.settings.deadline_alert
        assert alert is not None
        key = store_key()
        root = storage_root(config)
        now = datetime.now(UTC)
        due = due_soon(config, root, key, now, alert.days_before_due)
        drop = config.settings.drop
        if drop is not None:  # DROP downloads not yet answered, near their 45-day due date
            days = alert.days_before_due if drop.alert_days_before_due is None else drop.alert_days_before_due
            due += drop_due_soon(root, key, now, days)
        if not due:
            self.log.info("No open request or DROP download is due within %d day(s)", alert.days_before_due)
            return {"alerted": 0}
        notifier = dpo_notifier(config, default_alert_message(due, alert.days_before_due))
        notifier({**context, "privacy_requests_due": due})
        for item in due:
            mark_alerted(root, key, item, now)
        self.log.info("Alerted about %d item(s) due soon: %s", len(due), ", ".join(i["request_id"] for i in due))
        return {"alerted": len(due)}
