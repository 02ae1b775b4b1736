"""Scheduled checks across requests: deadline alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context

from ...deliverables.deadlines import default_alert_message, due_soon
from ...model.settings import PrivacyConfig
from ...store import layout
from ...store.store import RequestStore
from ..hooks import store_key
from ..notify import dpo_notifier
from ..storage import storage_root


class DeadlineCheckOperator(BaseOperator):
    """Notifies about requests still open ``days_before_due`` before their legal due date, once each.

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
        due = due_soon(config, root, key, datetime.now(UTC), alert.days_before_due)
        if not due:
            self.log.info("No open request is due within %d day(s)", alert.days_before_due)
            return {"alerted": 0}
        notifier = dpo_notifier(config, default_alert_message(due, alert.days_before_due))
        notifier({**context, "privacy_requests_due": due})
        for item in due:
            RequestStore(root, item["request_id"], key).put(
                layout.DEADLINE_ALERT, {"time": datetime.now(UTC).isoformat(), "due": item["due"]})
        self.log.info("Alerted about %d request(s) due soon: %s", len(due), ", ".join(i["request_id"] for i in due))
        return {"alerted": len(due)}
