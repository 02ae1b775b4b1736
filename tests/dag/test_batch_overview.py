"""The Privacy requests pages list batches and open each subject's request page: a batch of the demo runs
in-process, then the plugin's pages are read through Airflow's own API app (its auth in front)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.equivalence import run_batch_dag

SUBJECTS = [{"request_id": "ui-jane", "identity": {"email": "jane@example.com"}},
            {"request_id": "ui-john", "identity": {"email": "john@example.com"}},
            {"request_id": "ui-fax", "identity": {"fax": "+15555550100"}},  # no such identity type: rejected
            {"request_id": "req-1", "identity": {"email": "ada@example.com"}}]  # an earlier request's id: rejected


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
    with TestClient(create_app()) as client:
        yield client


def test_the_overview_lists_a_batch_and_opens_each_subjects_request_page(run_request, config_folder, shop_db: Path,
                                                                          storage: Path, api, monkeypatch) -> None:
    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))
    _, earlier, _ = run_request("default_access_policy", {"email": "ada@example.com"})  # request id req-1
    assert earlier.state == "success"
    dag_run, states = run_batch_dag(config_folder.path, "default_access_policy", SUBJECTS, "ui-batch")
    assert dag_run.state == "success", states

    batches = {b["batch_id"]: b for b in api.get("/privacy/api/batches").json()}
    batch = batches["ui-batch"]
    assert (batch["policy"], batch["subjects"], batch["rejected"]) == ("Access request (GDPR Art. 15)", 4, 2)
    assert batch["run_id"] == dag_run.run_id and batch["checkpoint"] == "finalize"
    overview = api.get("/privacy/").text
    assert 'data-batch-id="ui-batch"' in overview and "jane@example.com" not in overview

    page = api.get(f"/privacy/batches/{dag_run.run_id}")
    assert page.status_code == 200
    for subject in SUBJECTS:
        assert f'data-request-id="{subject["request_id"]}"' in page.text
    assert "+15555550100" not in page.text and "jane@example.com" not in page.text

    jane = api.get(f"/privacy/batches/{dag_run.run_id}/requests/ui-jane")
    assert jane.status_code == 200
    assert "Privacy request ui-jane" in jane.text and "A subject of batch" in jane.text
    assert "demo_shop:customer" in jane.text and "access.demo_shop.customer" in jane.text  # collections, tasks
    assert "jane@example.com" not in jane.text
    # Its certificate, linked from its page, is the one finalize wrote from its report (the SHA-256 matches).
    assert 'href="./ui-jane/certificate"' in jane.text
    served = api.get(f"/privacy/batches/{dag_run.run_id}/requests/ui-jane/certificate")
    digest = hashlib.sha256((storage / "ui-jane" / "report.json").read_bytes()).hexdigest()
    assert served.status_code == 200 and f'<code id="report-sha256">{digest}</code>' in served.text
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert api.get(f"/privacy/batches/{dag_run.run_id}/requests/req-1/certificate").status_code == 404
    rejected = api.get(f"/privacy/batches/{dag_run.run_id}/requests/ui-fax")
    assert rejected.status_code == 200 and "rejected" in rejected.text
    assert "already used" in page.text
    # req-1 is the earlier request's: the batch's pages do not show it as the batch's subject.
    assert api.get(f"/privacy/batches/{dag_run.run_id}/requests/req-1").status_code == 404
    assert api.get("/privacy/batches/no-such-run").status_code == 404
    single = api.get(f"/privacy/requests/{earlier.run_id}")  # a single request's page is as before
    assert single.status_code == 200 and "Privacy request req-1" in single.text
    assert "A subject of batch" not in single.text


def test_a_run_refused_for_reusing_a_request_id_shows_nothing_of_that_request(run_request, config_folder,
                                                                               shop_db: Path, storage: Path, api,
                                                                               monkeypatch) -> None:
    """The page, the package, the email and the certificate of a refused run never serve the other request's."""
    monkeypatch.setenv("PRIVACY_REQUESTS_CONFIG_DIR", str(config_folder.path))
    _, first, _ = run_request("default_access_policy", {"email": "jane@example.com"}, "shared-id")
    _, second, _ = run_request("default_access_policy", {"email": "john@example.com"}, "shared-id")
    assert (first.state, second.state) == ("success", "failed")

    own = api.get(f"/privacy/requests/{first.run_id}")
    assert own.status_code == 200 and 'id="foreign"' not in own.text
    assert "access-package/json" in own.text and 'id="certificate"' in own.text
    page = api.get(f"/privacy/requests/{second.run_id}")
    assert page.status_code == 200 and 'id="foreign"' in page.text and first.run_id in page.text
    assert "access-package/json" not in page.text and 'id="certificate"' not in page.text
    assert api.get(f"/privacy/requests/{first.run_id}/access-package/json").status_code == 200
    for route in ("access-package/json", "certificate", "emails/daycare_vendor"):
        assert api.get(f"/privacy/requests/{second.run_id}/{route}").status_code == 404, route
