"""Access packages expire (package/expiry.py) on a real store, without Airflow: the policy's keep_days (finite
by default), a batch subject's report gets the event appended, a request still at work and a folder that
cannot be read keep theirs, and nothing of the package's content reaches the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from include.privacy_requests.deliverables.package.expiry import expire_access_packages
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.policy import AccessPackageSettings
from include.privacy_requests.store import layout
from include.privacy_requests.store.store import RequestStore
from tests.support.paths import DEMO_CONFIG

KEY = Fernet.generate_key().decode()
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def finished(root: Path, request_id: str, written: datetime, *, status: str = "complete",
             batch_id: str | None = None, key: str = KEY) -> RequestStore:
    """A finished access request whose package was written at ``written``."""
    store = RequestStore(root, request_id, key)
    store.put(layout.REQUEST, {"request_id": request_id, "policy": "default_access_policy",
                               "identity_types": ["email"], "run_id": f"run-{request_id}",
                               "received": written.isoformat(), "dry_run": False})
    validated = {"event": "request_validated", "time": written.isoformat(), "batch_id": batch_id}
    store.put(layout.event(written, "v"), validated)
    store.put(layout.event(written, "u"), {"event": "access_package_uploaded", "time": written.isoformat()})
    for name in layout.PACKAGE_FILES.values():
        store.write_public(name, ['{"demo_shop:customer": [{"email": "jane@example.com"}]}'])
    store.write_public(layout.REPORT, [json.dumps({"request_id": request_id, "status": status,
                                                   "events": [validated]}) + "\n"])
    return store


def test_the_period_is_finite_by_default_and_bounded() -> None:
    assert AccessPackageSettings().keep_days == 30
    with pytest.raises(ValidationError):
        AccessPackageSettings(keep_days=0)


def test_old_packages_go_young_ones_and_open_requests_stay(tmp_path: Path) -> None:
    config, root = load_config(DEMO_CONFIG), tmp_path / "storage"
    batch = finished(root, "b-1", NOW - timedelta(days=31), batch_id="batch-1")
    finished(root, "young", NOW - timedelta(days=29))
    finished(root, "retrying", NOW - timedelta(days=90), status="retrying")
    finished(root, "other-key", NOW - timedelta(days=90), key=Fernet.generate_key().decode())

    result = expire_access_packages(config, root, KEY, now=NOW)

    assert result.as_dict() == {"requests": 1, "files": 3, "kept": 2, "errors": 1}
    assert not list((root / "b-1").glob("access_package*"))
    for kept in ("young", "retrying", "other-key"):
        assert len(list((root / kept).glob("access_package*"))) == 3, kept
    text = (root / "b-1" / layout.REPORT).read_text()
    report = json.loads(text)
    assert report["events"][-1]["event"] == "access_package_deleted" and report["events"][-1]["keep_days"] == 30
    assert report["events"][-1]["emailed_copy"] is None  # not delivered by email: no copy elsewhere
    assert "jane@example.com" not in text
    assert not (root / "b-1" / layout.CERTIFICATE).exists()  # this stand-in report names no policy
    assert batch.exists(layout.PACKAGE_DELETED)
    assert expire_access_packages(config, root, KEY, now=NOW).files == 0  # nothing left to delete
