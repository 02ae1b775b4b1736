"""Policies: which data categories an access request returns and how an erasure masks them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .graph import Collection, FieldSpec


def category_matches(category: str, target: str) -> bool:
    """Hierarchical match by whole segments: ``user.contact`` matches ``user.contact.email``, not
    ``user.contactless``."""
    return category == target or category.startswith(target + ".")


class MaskingStrategySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str
    configuration: dict[str, Any] = Field(default_factory=dict)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    name: str | None = None
    action: Literal["access", "erasure"]
    targets: list[str] = Field(min_length=1)
    masking_strategy: MaskingStrategySpec | None = None


WEEK = timedelta(days=7)


class Webhook(BaseModel):
    """An HTTP call around execution: one-way notifies; two-way may answer with derived identities, and a
    two-way pre-execution webhook may halt the request until it is resumed (or ``halt_timeout`` passes)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    conn_id: str
    endpoint: str = ""
    direction: Literal["one_way", "two_way"] = "one_way"
    halt_timeout: timedelta = Field(default=WEEK, gt=timedelta(0))  # ISO 8601 ("P7D", "PT12H") or seconds


class Webhooks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pre: list[Webhook] = Field(default_factory=list)
    post: list[Webhook] = Field(default_factory=list)


PackageFormat = Literal["json", "html", "csv"]


class AccessPackageSettings(BaseModel):
    """Which files an access request's package holds, and whether the HTML goes to the data subject by email."""

    model_config = ConfigDict(extra="forbid")

    formats: list[PackageFormat] = Field(default_factory=lambda: ["json", "html"], min_length=1)
    deliver: Literal["email"] | None = None
    # The files hold the subject's data in clear: the retention DAG deletes them this many days after writing.
    keep_days: int = Field(default=30, ge=1, le=3660)

    @model_validator(mode="after")
    def _consistent(self) -> AccessPackageSettings:
        if len(set(self.formats)) != len(self.formats):
            raise ValueError("each format may be listed once")
        if self.deliver == "email" and "html" not in self.formats:
            raise ValueError("'deliver: email' sends the HTML package: add html to formats")
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = None
    description: str | None = None
    regulation: Literal["gdpr", "ccpa"] = "gdpr"
    due_days: int | None = Field(default=None, gt=0)  # overrides the regulation's time limit
    rules: list[Rule] = Field(min_length=1)
    webhooks: Webhooks = Field(default_factory=Webhooks)
    manual_approval: bool = False  # a person approves or rejects each request before anything is touched
    access_package: AccessPackageSettings = Field(default_factory=AccessPackageSettings)

    @property
    def display_name(self) -> str:
        return self.name or self.key

    @property
    def access_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.action == "access"]

    @property
    def erasure_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.action == "erasure"]

    def access_fields(self, collection: Collection) -> list[FieldSpec]:
        """Leaf fields an access package returns for this collection."""
        targets = [t for r in self.access_rules for t in r.targets]
        return [f for f in collection.leaf_fields if _matches_any(f, targets)]

    def erasure_fields(self, collection: Collection) -> dict[str, MaskingStrategySpec]:
        """The fields that may be erased, with the strategy of the last erasure rule that targets each.

        The one rule for every kind of dataset: a leaf field whose categories an erasure rule targets, never
        a primary key (rows are found by it) nor a field declared ``read_only``.
        """
        result: dict[str, MaskingStrategySpec] = {}
        for rule in self.erasure_rules:
            assert rule.masking_strategy is not None
            for fld in collection.leaf_fields:
                if _matches_any(fld, rule.targets) and not (fld.primary_key or fld.read_only):
                    result[fld.path] = rule.masking_strategy
        return result


def _matches_any(fld: FieldSpec, targets: list[str]) -> bool:
    return any(category_matches(c, t) for c in fld.data_categories for t in targets)
