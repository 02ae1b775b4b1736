"""Thin operators, one module per concern: each opens the request, calls the engine with the hooks it needs,
maps the engine's errors onto Airflow's, and pushes counts (never personal data) to XCom."""

from .batch import (
    BatchAccessCollectionOperator,
    BatchEmailSendOperator,
    BatchErasureCollectionOperator,
    BatchFinalizeOperator,
    BatchSkippedOperator,
    BatchUploadAccessPackageOperator,
    BatchValidateOperator,
)
from .collections import AccessCollectionOperator, ErasureCollectionOperator
from .confirmation import VendorConfirmationOperator
from .request import ApproveRequestOperator, FinalizeOperator, UploadAccessPackageOperator, ValidateRequestOperator
from .scheduled import DeadlineCheckOperator
from .vendor import EmailSendOperator, VendorDigestOperator, VendorTestEmailOperator
from .webhooks import WebhooksOperator

__all__ = [
    "BatchAccessCollectionOperator",
    "BatchEmailSendOperator",
    "BatchErasureCollectionOperator",
    "BatchFinalizeOperator",
    "BatchSkippedOperator",
    "BatchUploadAccessPackageOperator",
    "BatchValidateOperator",
    "AccessCollectionOperator",
    "ApproveRequestOperator",
    "DeadlineCheckOperator",
    "EmailSendOperator",
    "ErasureCollectionOperator",
    "FinalizeOperator",
    "UploadAccessPackageOperator",
    "ValidateRequestOperator",
    "VendorConfirmationOperator",
    "VendorDigestOperator",
    "VendorTestEmailOperator",
    "WebhooksOperator",
]
