"""docker-compose.yaml runs what the Celery end-to-end test runs (no Docker engine runs here, so the file
is checked, not started): the same components with the same commands, the same Celery settings, two workers
with their own host names, the store on S3 through the connection privacy.yml names, and an image that
carries the runtime pins only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.privacy_requests.model.loading import load_config
from scripts.celery_airflow import celery_settings, worker_command
from scripts.local_airflow import component_commands

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {"airflow-init", "api-server", "scheduler", "dag-processor", "triggerer", "worker-1", "worker-2"}
TEST_TOOLS = ("pytest", "hypothesis", "selenium", "ruff", "aiosmtpd", "moto", "pytest-timeout", "pytest-xdist")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    """The environment with ``${VAR:?message}`` replaced by ``<VAR>``, as docker compose would fill it."""
    return {k: re.sub(r"\$\{(\w+)(:\?[^}]*)?\}", r"<\1>", str(v)) for k, v in service["environment"].items()}


def test_the_stack_has_every_part(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == AIRFLOW_SERVICES | {"postgres", "redis", "minio", "create-bucket", "shop-db"}
    for name in AIRFLOW_SERVICES:
        assert compose["services"][name]["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name


def test_components_run_the_commands_the_e2e_cluster_runs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, args in component_commands(8080).items():
        expected = [a for a in args if a not in ("-H", "127.0.0.1")]  # in a container it listens on all
        expected = ["--port" if a == "-p" else a for a in expected]
        assert services[name]["command"] == (expected if name == "api-server" else args), name
    queue = _env(services["worker-1"])["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    for name in ("worker-1", "worker-2"):
        assert services[name]["command"] == worker_command(name, queue)
        assert services[name]["hostname"] == name  # task instances say which worker ran them


def test_every_airflow_service_has_the_celery_settings_of_the_e2e_test(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _env(compose["services"][name])
        metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert metadata.startswith("postgresql+psycopg2://")
        expected = celery_settings(env["AIRFLOW__CELERY__BROKER_URL"], metadata, "privacy", concurrency=2)
        assert {k: env[k] for k in expected} == expected, name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://api-server:8080/execution/"
        assert "PRIVACY_REQUESTS_STORAGE" not in env  # the storage comes from the mounted privacy.yml


def test_the_store_is_on_s3_through_the_connection_privacy_yml_names(compose: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    service = compose["services"]["worker-1"]
    mount = next(v for v in service["volumes"] if v.endswith("/include/privacy/privacy.yml:ro"))
    config = tmp_path / "privacy"
    shutil.copytree(ROOT / "include/privacy", config, ignore=shutil.ignore_patterns("seed"))
    shutil.copy(ROOT / mount.split(":")[0], config / "privacy.yml")
    settings = load_config(config).settings
    assert settings.storage == "s3://privacy-requests/requests"
    assert settings.datasets["demo_shop"].pool == "shop_db"
    connection = json.loads(_env(service)[f"AIRFLOW_CONN_{settings.storage_conn_id.upper()}"])
    assert connection["conn_type"] == "aws" and connection["extra"]["endpoint_url"] == "http://minio:9000"
    assert "mc mb --ignore-existing store/privacy-requests" in compose["services"]["create-bucket"]["command"][0]
    assert "airflow pools set shop_db" in compose["services"]["airflow-init"]["command"][0]


def test_the_image_carries_the_runtime_pins_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r /opt/airflow/requirements.txt" in dockerfile
    assert not [line for line in dockerfile.splitlines() if "requirements-dev" in line and not line.startswith("#")]
    runtime = [line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
               if "==" in line]
    assert not set(TEST_TOOLS) & set(runtime)
    assert {"apache-airflow-providers-celery", "apache-airflow-providers-amazon", "s3fs"} <= set(runtime)
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in dev
    assert {line.split("==")[0].lower() for line in dev if "==" in line} >= set(TEST_TOOLS)
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            assert not line or line.startswith(("#", "-r ")) or re.fullmatch(r"[\w.\-]+==[\w.+]+", line), line
