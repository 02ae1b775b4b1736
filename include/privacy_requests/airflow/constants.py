"""Names Airflow and the UI plugin share: DAG ids, the store key's Variable, task ids. Importing this module
costs nothing (no Airflow import), so the plugin and the DAG files can read it at parse time."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model.graph import CollectionAddress
    from ..model.settings import PrivacyConfig

DAG_ID = "privacy_request"
BATCH_DAG_ID = "privacy_request_batch"
TEST_EMAIL_DAG_ID = "privacy_vendor_test_email"
DEADLINES_DAG_ID = "privacy_request_deadlines"
RETENTION_DAG_ID = "privacy_request_retention"
VENDOR_DIGEST_DAG_ID = "privacy_vendor_digest"
STORE_KEY_VARIABLE = "privacy_requests_store_key"

VALIDATE, APPROVE, UPLOAD, FINALIZE = "validate_request", "approve_request", "upload_access_package", "finalize"
ACCESS_GROUP, ERASURE_GROUP, EMAIL_GROUP = "access", "erasure", "erasure_email_send"
CONFIRM_GROUP = "vendor_confirmation"  # vendor_confirmation.<dataset>, for vendors with confirm: true
CONFIRM_PAGE = "/privacy-vendor/confirm"  # the confirmation link's page (plugins/privacy_vendor_confirmation.py)


def webhooks_task(step: str) -> str:
    return f"{step}_webhooks"


def collection_task(group: str, address: CollectionAddress) -> str:
    """``access.<dataset>.<collection>`` or ``erasure.<dataset>.<collection>``."""
    return f"{group}.{address.task_suffix}"


def checkpoint_order(config: PrivacyConfig) -> list[str]:
    """Every task id of the privacy_request DAG, in the order the checkpoints run."""
    return [
        VALIDATE, *([APPROVE] if config.needs_approval else []), webhooks_task("pre"),
        *(collection_task(ACCESS_GROUP, a) for a in config.plan.order),
        UPLOAD,
        *(collection_task(ERASURE_GROUP, a) for a in config.plan.order),
        *(f"{EMAIL_GROUP}.{ds}" for ds in config.email_datasets),
        *(f"{CONFIRM_GROUP}.{ds}" for ds in confirming_vendors(config)),
        webhooks_task("post"), FINALIZE,
    ]


def confirming_vendors(config: PrivacyConfig) -> list[str]:
    """The vendor datasets that confirm their erasures (``confirm: true``)."""
    return [ds for ds in config.email_datasets if config.mapping(ds).email.confirm]  # type: ignore[union-attr]

DROP_DAG_ID = "privacy_drop"  # California's DROP for data brokers (docs/drop.md)
DROP_RECEIVE, DROP_MATCH, DROP_RESPOND = "drop_receive", "drop_match", "drop_respond"
