"""What the UI plugins read from storage (pages.StoreReader), without Airflow: reports, who owns a request id,
the package's files, the vendor emails as sent, and the refusals that keep a refused run off another request."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.deliverables.pages import NoStoreKey, StoreReader
from include.privacy_requests.errors import ForeignRequestError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.store import layout
from include.privacy_requests.store.store import RequestStore
from tests.support.paths import DEMO_CONFIG

KEY = Fernet.generate_key().decode()
VENDOR = "daycare_vendor"


@pytest.fixture(scope="module")
def config() -> PrivacyConfig:
    return load_config(DEMO_CONFIG)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """r-1 owned by run-1, complete, with a vendor email sent, a JSON package and a certificate."""
    store = RequestStore(tmp_path, "r-1", KEY)
    store.put(layout.REQUEST, {"request_id": "r-1", "run_id": "run-1", "received": "2026-12-01T00:00:00+00:00"})
    store.put(layout.email_sent(VENDOR), {"subject": "Erasure request r-1", "recipients": ["privacy@vendor.example"],
                                          "message_id": "<m1@example.com>", "time": "2026-12-01T01:00:00+00:00"})
    store.put(layout.email_message(VENDOR), {"html": "<p>jane@example.com</p>"})
    (tmp_path / "r-1" / layout.REPORT).write_text(json.dumps({"status": "complete", "rows_found": 3}))
    (tmp_path / "r-1" / layout.ACCESS_PACKAGE).write_text("{}")
    (tmp_path / "r-1" / layout.CERTIFICATE).write_text("<html></html>")
    return tmp_path


def test_reports_and_deliverables_are_read_in_clear(config: PrivacyConfig, root: Path) -> None:
    reader = StoreReader(config, root, None)
    assert reader.report("r-1") == {"status": "complete", "rows_found": 3}
    assert reader.report("r-2") is None
    for hostile in ("..", ".", "batches", "../r-1", "r-1/..", ""):
        assert reader.report(hostile) is None, hostile
    assert reader.packages("r-1") == [{"format": "json", "file": layout.ACCESS_PACKAGE}]
    assert reader.has_certificate("r-1") and not reader.has_certificate("r-2")


def test_a_batch_report_is_read_again_only_when_it_changed(config: PrivacyConfig, tmp_path: Path) -> None:
    path = tmp_path / layout.batch_report("b-1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"subjects_accepted": 1}))
    reader = StoreReader(config, tmp_path, KEY)
    first = reader.batch_report("b-1")
    assert first == {"subjects_accepted": 1} and reader.batch_report("b-1") is first  # cached
    path.write_text(json.dumps({"subjects_accepted": 100_000}))
    os.utime(path, ns=(1, 1))
    assert reader.batch_report("b-1") == {"subjects_accepted": 100_000}
    assert reader.batch_report("b-2") is None and reader.batch_report("..") is None


def test_a_run_that_does_not_own_the_request_id_gets_nothing_of_it(config: PrivacyConfig, root: Path) -> None:
    reader = StoreReader(config, root, KEY)
    assert reader.owner("r-1") == "run-1" and reader.owner("r-new") is None
    assert reader.own_request_id("run-1", "r-1") == "r-1"
    assert reader.own_request_id("run-2", "r-1") is None  # refused for reusing r-1
    assert reader.own_request_id("run-3", "r-new") == "r-new"  # nobody holds it yet
    assert reader.owned_store("run-1", "r-1").base.name == "r-1"
    with pytest.raises(ForeignRequestError, match="belongs to run 'run-1'"):
        reader.owned_store("run-2", "r-1")
    with pytest.raises(NoStoreKey):
        StoreReader(config, root, None).owned_store("run-1", "r-1")
    # Without the key, or with another deployment's, the pages show what Airflow holds: nobody owns it here.
    assert StoreReader(config, root, None).owner("r-1") is None
    assert StoreReader(config, root, Fernet.generate_key().decode()).owner("r-1") is None


def test_vendor_emails_with_their_bodies_only_when_asked(config: PrivacyConfig, root: Path) -> None:
    reader = StoreReader(config, root, KEY)
    [email] = reader.emails("r-1", bodies=True)
    assert (email["dataset"], email["to"], email["html"]) == (VENDOR, "privacy@vendor.example",
                                                               "<p>jane@example.com</p>")
    assert reader.emails("r-1", bodies=False)[0]["html"] == ""
    assert reader.emails("r-2", bodies=True) == []
    assert StoreReader(config, root, None).emails("r-1", bodies=True) == []
    dry = RequestStore(root, "r-dry", KEY)
    dry.put(layout.dry_run_email(VENDOR), {"subject": "Erasure request r-dry", "recipients": ["privacy@v.example"],
                                           "time": "2026-12-01T01:00:00+00:00", "html": "<p>plan</p>"})
    [rendered] = reader.emails("r-dry", bodies=True)
    assert rendered["message_id"] is None and rendered["html"] == "<p>plan</p>"


def test_clock_and_vendors_are_empty_where_the_store_cannot_be_read(config: PrivacyConfig, root: Path) -> None:
    assert StoreReader(config, root, KEY).clock_and_vendors("r-1") == {"extensions": [], "vendors": []}
    assert StoreReader(config, root, None).clock_and_vendors("r-1") == {}
