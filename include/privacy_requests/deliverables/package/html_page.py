"""``access_package.html``: the package as a letter the data subject can read, on a phone too.

One self-contained file: inline CSS, no script, no external resource, so it opens offline and shows the same
anywhere. Jinja2 escapes every value (autoescape), so a stored ``<script>`` shows as text. The page is
streamed: each collection shows its first ``SHOWN_ROWS`` records and says how many it holds; all of them are
in the JSON file and the CSV zip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ...model.settings import PrivacyConfig
from ...store.store import RequestStore
from .labels import category, readable, words
from .rows import PackagedCollection

SHOWN_ROWS = 500  # records of one collection shown on the page; the JSON and CSV files hold them all
# Explicit directional formatting (embeddings, overrides, isolates): in a stored value they would reorder what
# the person reads ("Invoice\u202egnp.exe" shows as "Invoiceexe.png"). On the page each value is isolated
# (<bdi>, so nothing leaks past it) and these characters are shown as what they are, e.g. [U+202E].
_BIDI_CONTROLS = {code: f"[U+{code:04X}]" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_pages = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                     undefined=StrictUndefined)


@dataclass
class Entry:
    """One field of a record as shown: a value, a nested group of fields, or a list of values."""

    label: str
    text: str = ""
    children: list[Entry] = field(default_factory=list)
    items: list[Entry] = field(default_factory=list)


@dataclass
class FieldMeaning:
    label: str
    categories: list[tuple[str, str]]  # (name, description) from the taxonomy


@dataclass
class Section:
    """One collection on the page."""

    anchor: str
    title: str
    description: str
    count: int
    meanings: list[FieldMeaning]
    records: Iterable[list[Entry]]


@dataclass
class System:
    """One dataset (a system of the organization) with its collections on the page."""

    title: str
    description: str
    sections: list[Section]


def shown(text: str) -> str:
    """Text as the page shows it: directional formatting characters made visible ([U+202E])."""
    return text.translate(_BIDI_CONTROLS)


def entries(node: dict[str, Any]) -> list[Entry]:
    """A projected row as nested entries, in the order its fields are declared."""
    return [_entry(shown(words(key)), value) for key, value in node.items()]


def _entry(label: str, value: Any) -> Entry:
    if isinstance(value, dict):
        return Entry(label, children=entries(value))
    if isinstance(value, list):
        return Entry(label, items=[_entry("", v) for v in value])
    return Entry(label, text=shown(readable(value)))


def _meanings(packaged: PackagedCollection) -> list[FieldMeaning]:
    result = []
    for path in packaged.paths:
        spec = packaged.collection.field(path)
        categories = [category(c) for c in (spec.data_categories if spec else ())]
        result.append(FieldMeaning(" › ".join(shown(words(p)) for p in path.split(".")), categories))
    return result


def _systems(config: PrivacyConfig, store: RequestStore, collections: list[PackagedCollection],
             counts: dict[str, int]) -> list[System]:
    systems: dict[str, System] = {}
    for packaged in collections:
        count = counts.get(packaged.name, 0)
        if not count:
            continue
        address = packaged.collection.address
        dataset = config.datasets[address.dataset]
        if address.dataset not in systems:
            systems[address.dataset] = System(dataset.name or words(dataset.fides_key), dataset.description or "", [])
        meta = next((c for c in dataset.collections if c.name == address.collection), None)
        records = (entries(row) for row in islice(packaged.rows(store), SHOWN_ROWS))
        systems[address.dataset].sections.append(Section(
            f"{address.dataset}-{address.collection}", words(address.collection),
            (meta.description if meta else None) or "", count, _meanings(packaged), records))
    return list(systems.values())


def html_chunks(config: PrivacyConfig, store: RequestStore, request_id: str, collections: list[PackagedCollection],
                counts: dict[str, int], *, full_data_in: list[str], now: datetime) -> Iterator[str]:
    """The page as text chunks; ``counts`` (rows per collection) comes from a pass that read every row, and
    ``full_data_in`` names the package's other files, which hold every record."""
    return _pages.get_template("access_package.html.j2").generate(
        organization=config.settings.organization, request_id=request_id, date=readable(now.isoformat()),
        systems=_systems(config, store, collections, counts), total=sum(counts.values()), shown_rows=SHOWN_ROWS,
        full_data_in=full_data_in)
