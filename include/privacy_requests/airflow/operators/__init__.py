"""Thin operators, one module per concern: each opens the request, calls the engine with the hooks it needs,
maps the engine's errors onto Airflow's, and pushes counts (never personal data) to XCom."""

from .collections import AccessCollectionOperator, ErasureCollectionOperator
from .confirmation import VendorConfirmationOperator
from .request import ApproveRequestOperator, FinalizeOperator, UploadAccessPackageOperator, ValidateRequestOperator
from .scheduled import DeadlineCheckOperator
from .vendor import EmailSendOperator, VendorTestEmailOperator
from .webhooks import WebhooksOperator

__all__ = [
    "AccessCollectionOperator",
    "ApproveRequestOperator",
    "DeadlineCheckOperator",
    "EmailSendOperator",
    "ErasureCollectionOperator",
    "FinalizeOperator",
    "UploadAccessPackageOperator",
    "ValidateRequestOperator",
    "VendorConfirmationOperator",
    "VendorTestEmailOperator",
    "WebhooksOperator",
]
