"""The ``privacy_request_retention`` DAG (Airflow): removes identities from Airflow's metadata database once
requests are finished and older than the retention period (see include/privacy_requests/airflow/retention.py)."""

from __future__ import annotations

from include.privacy_requests.airflow.retention import build_retention_dag
from include.privacy_requests.model.loading import load_config

dag = build_retention_dag(load_config())
