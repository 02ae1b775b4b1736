"""The ``privacy_request`` DAG: one run is one privacy request (Airflow Privacy Requests).

The DAG is built from the configuration folder (include/privacy/ or $PRIVACY_REQUESTS_CONFIG_DIR); a bad
configuration shows here as this file's import error, naming every file and field at fault.
"""

from __future__ import annotations

from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
from include.privacy_requests.model.loading import load_config

dag = build_privacy_request_dag(load_config())
