"""The ``privacy_request_batch`` DAG: one run is a batch of privacy requests, one per subject, processed
set-based with the same checkpoints as ``privacy_request`` (Airflow Privacy Requests).

Built from the configuration folder (include/privacy/ or $PRIVACY_REQUESTS_CONFIG_DIR); a bad configuration
shows here as this file's import error.
"""

from __future__ import annotations

from include.privacy_requests.airflow.dag_factory import build_batch_dag
from include.privacy_requests.model.loading import load_config

dag = build_batch_dag(load_config())
