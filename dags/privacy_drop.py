"""The ``privacy_drop`` DAG (California's DROP for data brokers), when privacy.yml has a ``drop:`` section:
receive the deletion lists, match, erase, answer (Airflow Privacy Requests, docs/drop.md)."""

from __future__ import annotations

from include.privacy_requests.airflow.drop_dag import build_drop_dag
from include.privacy_requests.model.loading import load_config

dag = build_drop_dag(load_config())
