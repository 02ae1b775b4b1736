"""Test set-up shared by every test: a throw-away Airflow home and metadata DB, set before Airflow loads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "include" / "privacy"
_HOME = tempfile.mkdtemp(prefix="af-test-home-")

os.environ.update({
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": Fernet.generate_key().decode(),
})
os.environ.pop("PRIVACY_REQUESTS_CONFIG_DIR", None)
os.environ.pop("PRIVACY_REQUESTS_STORAGE", None)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh Airflow metadata DB (SQLite), for tests that run DAGs."""
    from airflow.utils import db

    db.resetdb()
