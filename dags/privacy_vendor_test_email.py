"""The ``privacy_vendor_test_email`` DAG: send a vendor's test recipient a sample erasure email (Airflow)."""

from __future__ import annotations

from include.privacy_requests.airflow.dag_factory import build_vendor_test_email_dag
from include.privacy_requests.model.loading import load_config

dag = build_vendor_test_email_dag(load_config())
