"""The ``privacy_vendor_digest`` DAG (Airflow): each vendor with ``email: {digest: <schedule>}`` in privacy.yml
gets one email per schedule listing every privacy request waiting for it.

It exists when some vendor has a digest schedule.
"""

from __future__ import annotations

from include.privacy_requests.airflow.dag_factory import build_vendor_digest_dag
from include.privacy_requests.model.loading import load_config

dag = build_vendor_digest_dag(load_config())
