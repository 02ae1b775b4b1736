"""The DPO's notifier: privacy.yml's ``deadline_alert.notifier`` (any Airflow notifier) with its arguments,
used for deadline alerts and for vendors overdue with their confirmation."""

from __future__ import annotations

import importlib
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from ..model.settings import PrivacyConfig


def dpo_notifier(config: PrivacyConfig, message: dict[str, str]) -> Any | None:
    """The configured notifier with ``message`` (subject, html_content) under its kwargs; None when privacy.yml
    configures none. The configured kwargs win over the message's keys."""
    alert = config.settings.deadline_alert
    if alert is None:
        return None
    module, _, name = alert.notifier.rpartition(".")
    try:
        notifier_class = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise AirflowFailException(f"deadline_alert.notifier '{alert.notifier}' (privacy.yml) cannot be "
                                   "imported") from None
    return notifier_class(**{**message, **alert.kwargs})
