"""The ``privacy_request_deadlines`` DAG (Airflow): alerts about requests close to their legal due date.

It exists when privacy.yml has a ``deadline_alert`` section.
"""

from __future__ import annotations

from include.privacy_requests.airflow.dag_factory import build_deadlines_dag
from include.privacy_requests.model.loading import load_config

dag = build_deadlines_dag(load_config())
