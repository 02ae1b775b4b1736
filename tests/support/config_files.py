"""Editing a copy of a configuration folder, and reading what load_config says is wrong with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


def edit(folder: Path, name: str, change: Callable[[Any], None]) -> None:
    """Load a YAML file of the folder, let ``change`` modify it in place, write it back."""
    path = folder / name
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def problems_of(folder: Path) -> list:
    """The problems load_config reports for the folder (fails the test if it loads)."""
    from include.privacy_requests.errors import ConfigError
    from include.privacy_requests.model.loading import load_config

    with pytest.raises(ConfigError) as info:
        load_config(folder)
    return info.value.problems


def find(problems: list, file: str, field: str):
    """The single problem reported for this file and field."""
    matches = [p for p in problems if p.file == file and p.field == field]
    assert len(matches) == 1, f"expected one problem at {file}: {field}, got {[str(p) for p in problems]}"
    return matches[0]
