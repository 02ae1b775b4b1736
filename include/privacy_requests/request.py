"""One privacy request as the tasks see it: the validated conf, its policy and its store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import PrivacyConfig
from .errors import RequestError
from .graph import CollectionAddress
from .policy import Policy
from .store import RequestStore, StoragePath
from .values import cast, distinct

DERIVED_IDENTITY = "derived_identity.json"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class RequestConf(BaseModel):
    """The trigger conf, checked again after the DAG Params (the REST API and CLI can bypass the form)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)
    policy: str
    identity: dict[str, str] = Field(min_length=1)

    @field_validator("identity")
    @classmethod
    def _non_empty(cls, identity: dict[str, str]) -> dict[str, str]:
        identity = {k: v.strip() for k, v in identity.items() if v is not None and v.strip()}
        if not identity:
            raise ValueError("give at least one identity value, e.g. {\"email\": \"jane@example.com\"}")
        if "email" in identity and not _EMAIL.match(identity["email"]):
            raise ValueError("identity.email is not an email address")
        return identity


def parse_conf(raw: dict[str, Any]) -> RequestConf:
    try:
        return RequestConf.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'conf'}: {e['msg']}" for e in exc.errors()
        )
        raise RequestError(f"invalid request conf: {details}") from None


def request_id_for(request_id: str | None, run_id: str) -> str:
    """The conf's request id, or the run id made safe as a storage folder name."""
    return request_id or re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def check_request(config: PrivacyConfig, conf: RequestConf) -> list[str]:
    """Everything wrong with a request that can be known before anything is touched."""
    problems = []
    if conf.policy not in config.policies:
        problems.append(f"unknown policy '{conf.policy}'; configured: {', '.join(sorted(config.policies))}")
    unknown = sorted(set(conf.identity) - config.graph.identity_keys)
    if unknown:
        problems.append(f"unknown identity type(s) {unknown}; datasets use {sorted(config.graph.identity_keys)}")
    unreachable = config.plan.unreachable(conf.identity)
    if unreachable:
        names = ", ".join(str(a) for a in unreachable)
        helps = [k for k in sorted(config.graph.identity_keys - set(conf.identity))
                 if not set(config.plan.unreachable({*conf.identity, k})) & set(unreachable)]
        hint = f"; giving also {' or '.join(helps)} reaches them" if helps else ""
        problems.append(f"collections not reachable from the identities given ({', '.join(sorted(conf.identity))}), "
                        f"following the DAG's direction of each reference: {names}{hint}")
    return problems


def check_vendors(config: PrivacyConfig) -> list[str]:
    """Vendor email settings: every address well formed, a test address if given too."""
    problems = []
    for dataset in config.email_datasets:
        target = config.mapping(dataset).email
        assert target is not None
        for address in [*target.to, *([target.test_to] if target.test_to else [])]:
            if not _EMAIL.match(parseaddr(address)[1] or ""):
                problems.append(f"dataset '{dataset}': '{address}' is not a valid email address")
    return problems


@dataclass
class PrivacyRequest:
    """What every task needs: config, conf, policy and the request's store."""

    config: PrivacyConfig
    conf: RequestConf
    request_id: str
    store: RequestStore

    @property
    def policy(self) -> Policy:
        return self.config.policies[self.conf.policy]

    @property
    def identity(self) -> dict[str, str]:
        """The conf's identity plus identities derived by two-way pre-webhooks (the conf's win)."""
        return {**(self.store.get(DERIVED_IDENTITY) or {}), **self.conf.identity}

    def incoming_values(self, address: CollectionAddress) -> dict[str, list[Any]]:
        """Per target field, the de-duplicated, type-cast values arriving on the collection's edges."""
        collection = self.config.graph.collections[address]
        result: dict[str, list[Any]] = {}
        identity = self.identity
        for edge in self.config.plan.inputs[address]:
            if edge.source is None:
                raw = [identity[edge.source_field]] if edge.source_field in identity else []
            else:
                name = values_name(edge.source, edge.source_field)
                if not self.store.exists(name):
                    raise RequestError(f"the values of {edge.source}:{edge.source_field} are gone (the request "
                                       f"was finished): clear access.{edge.source.task_suffix} with its "
                                       "downstream tasks instead")
                raw = self.store.get(name)
            target = collection.field(edge.target_field)
            typed = [cast(v, target.data_type if target else None) for v in raw]
            result.setdefault(edge.target_field, []).extend(v for v in typed if v is not None)
        return {k: distinct(v) for k, v in result.items() if v}


def open_request(config: PrivacyConfig, raw_conf: dict[str, Any], run_id: str, root: StoragePath,
                 key: str) -> PrivacyRequest:
    conf = parse_conf(raw_conf)
    request_id = request_id_for(conf.request_id, run_id)
    return PrivacyRequest(config, conf, request_id, RequestStore(root, request_id, key))


def rows_name(address: CollectionAddress) -> str:
    return f"rows/{address.task_suffix}.jsonl"


def values_name(source: CollectionAddress, field: str) -> str:
    """Where the distinct values of a field are kept for the collections it feeds."""
    return f"values/{source.task_suffix}.{field}.json"
