"""Questions for a person, and their answers, as the engine sees them: what to ask, never how.

The engine builds a ``Question`` and hands it to an ``Ask`` callable; in Airflow that parks the task (human
in the loop, no worker slot held) and the task is called again with the ``Answer``. Form fields are plain
JSON-schema dicts with a ``default``, so the engine needs no Airflow import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

from ..errors import RequestError

RESUME, APPROVE, REJECT, CONFIRM = "Resume", "Approve", "Reject", "Confirm"


@dataclass(frozen=True)
class Question:
    """``subject`` and ``body`` are stored in Airflow's metadata DB: keep personal data out of them, except what
    the person must see to answer (a manual collection's values to look up)."""

    subject: str
    body: str
    options: list[str]
    timeout: timedelta
    form: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> JSON schema with a "default"


Ask = Callable[[Question], NoReturn]


@dataclass(frozen=True)
class Answer:
    """What the person chose and entered, and who they are (an Airflow user, not the data subject)."""

    option: str
    values: dict[str, Any]
    by: str

    @classmethod
    def of(cls, event: dict[str, Any], timed_out: str) -> Answer:
        """The answer in a resume event; no answer in time raises ``timed_out`` as a clear, final error."""
        if event.get("error") or not event.get("chosen_options"):
            raise RequestError(timed_out)
        user = event.get("responded_by_user") or {}
        return cls(option=event["chosen_options"][0], values=dict(event.get("params_input") or {}),
                   by=str(user.get("name") or user.get("id") or "unknown"))


def duration(delta: timedelta) -> str:
    """``7 day(s)`` or ``90 s``, for messages."""
    if delta.days and not delta.seconds:
        return f"{delta.days} day(s)"
    return f"{int(delta.total_seconds())} s"
