"""One real Airflow (api-server, scheduler, dag-processor, triggerer on 127.0.0.1) shared by the e2e modules
whose configuration is the demo's (access control, browser, UI, scheduler resume); the modules that need
another configuration start their own with tests/support/cluster.py's airflow_world()."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_airflow import AirflowCluster
from tests.support.cluster import airflow_world
from tests.support.smtp import SmtpServer


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowCluster, SmtpServer, Path, Path]]:
    with airflow_world(tmp_path_factory.mktemp("e2e")) as parts:
        yield parts


@pytest.fixture(scope="session")
def finished(world) -> dict[str, str]:
    """An access request and an erasure request, run to the end by the scheduler."""
    cluster, smtp = world[0], world[1]
    smtp.start()
    runs = {"access": "ui-access", "erasure": "ui-erasure"}
    for kind, run_id in runs.items():
        conf = {"policy": f"default_{kind}_policy", "identity": {"email": "jane@example.com"}, "request_id": run_id}
        cluster.trigger(run_id, conf)
    for run_id in runs.values():
        assert cluster.wait_for_run(run_id) == "success"
    return runs
