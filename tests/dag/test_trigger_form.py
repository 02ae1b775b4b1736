"""The trigger form as the DAG's Params describe it, and a request started with what the form sends (no JSON):
one text field per identity type, no policy preselected, the identity object only for REST and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.dag_runs import table

FORM = {"policy": "default_access_policy", "email": "jane@example.com", "phone_number": None, "request_id": "form-1",
        "identity": None}


@pytest.fixture
def dag(airflow_db: None, config_folder, storage: Path):
    from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
    from include.privacy_requests.model.loading import load_config

    return build_privacy_request_dag(load_config(config_folder.path))


def test_the_form_has_a_text_field_per_identity_type_and_no_policy_chosen(dag) -> None:
    from airflow.sdk.definitions._internal.types import NOTSET

    params = dag.params
    assert list(params) == ["policy", "email", "phone_number", "request_id", "dry_run", "after_dry_run", "identity"]
    assert params.get_param("policy").value is NOTSET  # the form shows no policy selected
    for key, title in (("email", "Email"), ("phone_number", "Phone number")):
        schema = params.get_param(key).schema
        assert (params[key], schema["type"], schema["title"]) == (None, ["null", "string"], title)
    assert params.get_param("identity").schema["section"] == "For REST and CLI callers"
    assert params["identity"] is None


def test_a_request_started_from_the_form_fields_runs(dag, shop_db: Path, storage: Path, smtp) -> None:
    dag_run = dag.test(run_conf=FORM)
    assert dag_run.state == "success"
    package = json.loads((storage / "form-1" / "access_package.json").read_text())
    assert package["demo_shop:customer"][0]["email"] == "jane@example.com"


def test_fields_and_the_identity_object_at_once_touch_nothing(dag, shop_db: Path, storage: Path, smtp) -> None:
    """validate_request refuses the conflict (its message: tests/unit/test_trigger_form_conf.py)."""
    before = table(shop_db, "customer")
    conf = {**FORM, "policy": "default_erasure_policy", "identity": {"email": "john@example.com"}}
    dag_run = dag.test(run_conf=conf)
    assert dag_run.state == "failed"
    assert table(shop_db, "customer") == before and smtp.received == []
    assert not storage.exists() or not any(storage.rglob("*.json"))  # refused before the request exists
