"""Words a person understands for what a package holds: data category names and descriptions from fideslang's
taxonomy, field names as words, dates as dates."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache

from fideslang.default_taxonomy import DEFAULT_TAXONOMY

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@cache
def _taxonomy() -> dict[str, tuple[str, str]]:
    return {c.fides_key: (c.name or c.fides_key, c.description or "") for c in DEFAULT_TAXONOMY.data_category}


def category(key: str) -> tuple[str, str]:
    """A data category's name and description; an organization's own category (privacy.yml) is named after
    its last segment, without a description."""
    return _taxonomy().get(key) or (words(key.rsplit(".", 1)[-1]), "")


def words(name: str) -> str:
    """``shipping_address_id`` -> ``Shipping address id``: a column name read aloud."""
    text = re.sub(r"[_\-.]+", " ", name).strip()
    return text[:1].upper() + text[1:] if text else name


def readable(value: object) -> str:
    """A value as the person reads it: dates as ``28 November 2026``, times with their zone, yes/no, and an
    empty value as a dash. Anything else is its text (escaping is the page's business)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and (_DATE.match(value) or _DATETIME.match(value)):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:  # looks like a date, is not one: shown as it is
            return value
        if _DATE.match(value):
            return _date_text(moment.date())
        zone = f" {moment.tzname()}" if moment.tzinfo else ""
        return f"{_date_text(moment.date())}, {moment.strftime('%H:%M')}{zone}"
    return str(value)


def _date_text(day: date) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"
