"""The ``drop:`` section of privacy.yml: how the broker takes part in California's DROP (docs/drop.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DROP_PRODUCTION_URL = "https://api.drop.privacy.ca.gov"
# A field's identity type (fides_meta.identity) or, failing that, its data category says which DROP identifier
# it holds. MAID, VIN and CTVID have no fideslang category of their own: give them an identity type.
IDENTITY_KINDS = {
    "email": "email", "phone_number": "phone", "phone": "phone", "first_name": "first_name",
    "last_name": "last_name", "date_of_birth": "dob", "dob": "dob", "postal_code": "zip", "zip": "zip",
    "maid": "maid", "advertising_id": "maid", "vin": "vin", "ctv_id": "ctvid", "ctvid": "ctvid",
}
CATEGORY_KINDS = {
    "user.contact.email": "email", "user.contact.phone_number": "phone", "user.name.first": "first_name",
    "user.name.last": "last_name", "user.demographic.date_of_birth": "dob",
    "user.contact.address.postal_code": "zip",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DropExemption(_Strict):
    """Records kept by law (status 2, Exempted): a whole dataset, one collection (``dataset:collection``) or
    a data category (a collection all of whose categorized fields fall under it). ``reason`` is recorded."""

    dataset: str | None = None
    collection: str | None = None
    category: str | None = None
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_target(self) -> DropExemption:
        if [self.dataset, self.collection, self.category].count(None) != 2:
            raise ValueError("an exemption names exactly one of 'dataset', 'collection' or 'category'")
        return self


class DropSettings(_Strict):
    broker_id: str = Field(pattern=r"^[A-Za-z0-9]{1,32}$")
    # The erasure policy each matched consumer's deletion runs (through the batch engine).
    policy: str
    # Where the download comes from: an object storage folder an operator drops the ZIP into, and/or the API
    # (the Airflow connection's password is the key; its host, if set, overrides api_base_url).
    folder: str | None = None
    api_conn_id: str | None = None
    api_base_url: str = DROP_PRODUCTION_URL
    # Responses: left in storage for a manual upload, or uploaded through the API.
    upload: Literal["manual", "api"] = "manual"
    schedule_days: int = Field(default=30, ge=1, le=45)
    # Collections (dataset:collection) to match; default every SQL collection holding a DROP identifier.
    match: list[str] | None = None
    # Collections where one row is one consumer (several matching rows = several consumers: opted out).
    consumers: list[str] | None = None
    # dataset:collection.field -> identifier kind, for columns the datasets do not mark.
    fields: dict[str, str] = Field(default_factory=dict)
    # dataset:collection -> {column: value}: what opting a consumer out of sale/sharing writes (status 4).
    opt_out: dict[str, dict[str, Any]] = Field(default_factory=dict)
    exemptions: list[DropExemption] = Field(default_factory=list)
    due_days: int = Field(default=45, ge=1)
    # The deadline alert (privacy.yml's deadline_alert, which must be set) names a download not yet answered this
    # many days before its due date; None: deadline_alert.days_before_due.
    alert_days_before_due: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _a_source(self) -> DropSettings:
        if not self.folder and not self.api_conn_id:
            raise ValueError("give 'folder' (where the DROP download ZIP is put) or 'api_conn_id' (the Airflow "
                             "connection holding the DROP API key), or both")
        if self.upload == "api" and not self.api_conn_id:
            raise ValueError("upload: api needs 'api_conn_id'")
        bad = sorted(k for k in self.fields.values() if k not in set(IDENTITY_KINDS.values()))
        if bad:
            raise ValueError(f"unknown identifier kind(s) {bad[:5]} in 'fields'; known: "
                             f"{', '.join(sorted(set(IDENTITY_KINDS.values())))}")
        return self
