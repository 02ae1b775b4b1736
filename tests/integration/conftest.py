"""Integration fixtures: a throw-away database on each real backend (SQLite, PostgreSQL, MariaDB); the
databases themselves are made in tests/support/databases.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.databases import BACKENDS, ENGINE_FACTORIES


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A SQLAlchemy engine on an empty database of the parametrized backend, dropped afterwards."""
    yield from ENGINE_FACTORIES[request.param](tmp_path)
