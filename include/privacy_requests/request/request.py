"""One privacy request as the tasks see it: the validated conf, its policy and its store."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ForeignRequestError, RequestError
from ..model.graph import CollectionAddress
from ..model.policy import Policy
from ..model.settings import PrivacyConfig
from ..model.values import cast, distinct
from ..store import in_flight, layout
from ..store.store import REQUEST_ID_PATTERN, RequestStore, StoragePath, is_request_folder

POLICY_KEY_PATTERN = r"^[A-Za-z0-9_.<>-]{1,200}$"  # a fides key, bounded
# An identity value is an address, a number or an account id: 254 characters is the longest valid email
# address (RFC 5321), and a bound keeps a megabyte "email" out of every page and query that shows it.
MAX_IDENTITY_LENGTH = 254
# The same rule as a JSON-schema pattern for the trigger form: no control characters (C0, DEL, C1).
IDENTITY_VALUE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
# Control, surrogate and line/paragraph separator characters: never part of an identity, and a
# NUL byte reaches PostgreSQL only to fail there.
_FORBIDDEN_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}


class RequestConf(BaseModel):
    """The trigger conf, checked again after the DAG Params (the REST API and CLI can bypass the form)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)
    policy: str = Field(pattern=POLICY_KEY_PATTERN)
    identity: dict[str, str] = Field(min_length=1)
    # A dry run reads as usual and records what erasure would do, changing nothing (erasure_plan.py).
    dry_run: bool = Field(default=False, strict=True)
    # The dry run this real run follows: the request page then compares plan and execution.
    after_dry_run: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)

    @field_validator("identity")
    @classmethod
    def _non_empty(cls, identity: dict[str, str]) -> dict[str, str]:
        problem = identity_problem(identity, "identity")
        if problem:
            raise ValueError(problem)
        identity = {k: v.strip() for k, v in identity.items() if v.strip()}
        if not identity:
            raise ValueError("give at least one identity value, e.g. {\"email\": \"jane@example.com\"}")
        if "email" in identity and not _EMAIL.match(identity["email"]):
            raise ValueError("identity.email is not an email address")
        return identity


def identity_problem(values: dict[str, str], where: str) -> str | None:
    """What is wrong with identity values wherever they come from (a conf, a webhook's derived identities):
    too long, or a control character; None when nothing is."""
    for key, value in values.items():
        if len(value) > MAX_IDENTITY_LENGTH:
            return f"{where}.{_shown(key)} is longer than {MAX_IDENTITY_LENGTH} characters"
        if any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in key + value):
            return f"{where}.{_shown(key)} contains a control character"
    return None


def _shown(name: object) -> str:
    """A field name as an error message may show it: printable, short (it may come from a hostile conf)."""
    text = "".join(c if c.isprintable() else "?" for c in str(name))
    return text[:40] + ("..." if len(text) > 40 else "")


def identity_fields(raw: dict[str, Any], identity_types: Collection[str]) -> dict[str, Any]:
    """The identity values given as top-level fields (the trigger form's one text field per identity type);
    a field left empty in the form arrives as null or blank and gives nothing."""
    return {k: v for k, v in raw.items()
            if k in identity_types and v is not None and not (isinstance(v, str) and not v.strip())}


def conf_identity(conf: Any, identity_types: Collection[str]) -> dict[str, str]:
    """The identity a run's conf carries, as given (the ``identity`` object or the fields), without checking
    it: for pages and log masking, which show or hide what was sent, valid or not."""
    if not isinstance(conf, dict):
        return {}
    given = conf.get("identity")
    identity = {str(k): v for k, v in given.items() if isinstance(v, str)} if isinstance(given, dict) else {}
    return {**identity, **{k: v for k, v in identity_fields(conf, identity_types).items() if isinstance(v, str)}}


def parse_conf(raw: Any, identity_types: Collection[str] = ()) -> RequestConf:
    """The conf as the caller sent it, checked; errors name the field, never echo a value.

    The identity comes either as the ``identity`` object (REST, CLI) or as one top-level field per identity
    type (the trigger form); both at once is refused, since which one to believe would be a guess.
    """
    if not isinstance(raw, dict):
        raise RequestError(f"invalid request conf: expected a JSON object, got {type(raw).__name__}")
    fields = identity_fields(raw, identity_types)
    raw = {k: v for k, v in raw.items() if v is not None and k not in identity_types}
    if fields and raw.get("identity"):
        raise RequestError(f"invalid request conf: identity: give the identity either as the 'identity' object or "
                           f"as the fields {', '.join(sorted(identity_types))}, not both (got 'identity' and "
                           f"{', '.join(repr(_shown(k)) for k in sorted(fields))})")
    if fields:
        raw["identity"] = fields
    elif "identity" not in raw and identity_types:
        raise RequestError(f"invalid request conf: identity: give at least one identity value "
                           f"({', '.join(sorted(identity_types))})")
    try:
        return RequestConf.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(_shown(p) for p in e['loc']) or 'conf'}: {e['msg']}" for e in exc.errors()
        )
        raise RequestError(f"invalid request conf: {details}") from None


def request_id_for(request_id: str | None, run_id: str) -> str:
    """The conf's request id, or one made from the run id that names a folder strictly inside the storage.

    Characters outside [A-Za-z0-9._-] become '_', and a name that still does not match REQUEST_ID_PATTERN
    (``.``, ``..``, a leading dot or dash, over 128 characters) is replaced by ``run-`` and a digest of the run
    id, so no run id can make the storage root, or a folder outside it, the request's folder.
    """
    if request_id:
        return request_id
    name = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    if is_request_folder(name):
        return name
    return "run-" + hashlib.sha256(run_id.encode()).hexdigest()[:32]


def check_request(config: PrivacyConfig, conf: RequestConf) -> list[str]:
    """Everything wrong with a request that can be known before anything is touched."""
    problems = []
    if conf.policy not in config.policies:
        problems.append(f"unknown policy '{conf.policy}'; configured: {', '.join(sorted(config.policies))}")
    unknown = sorted(set(conf.identity) - config.graph.identity_keys)
    if unknown:
        shown = [_shown(k) for k in unknown[:5]] + (["..."] if len(unknown) > 5 else [])
        problems.append(f"unknown identity type(s) {shown}; datasets use {sorted(config.graph.identity_keys)}")
    unreachable = config.plan.unreachable(conf.identity)
    if unreachable:
        names = ", ".join(str(a) for a in unreachable)
        helps = [k for k in sorted(config.graph.identity_keys - set(conf.identity))
                 if not set(config.plan.unreachable({*conf.identity, k})) & set(unreachable)]
        hint = f"; giving also {' or '.join(helps)} reaches them" if helps else ""
        problems.append(f"collections not reachable from the identities given ({', '.join(sorted(conf.identity))}), "
                        f"following the DAG's direction of each reference: {names}{hint}")
    return problems


def check_dry_run_followed(request: PrivacyRequest) -> list[str]:
    """A run naming the dry run it follows: that request must exist, be a dry run, and be for the same policy
    and subject (compared by their keyed fingerprint, never by the identity values)."""
    name = request.conf.after_dry_run
    if name is None:
        return []
    if request.conf.dry_run:
        return ["after_dry_run: a dry run cannot follow another dry run"]
    if name == request.request_id:
        return ["after_dry_run: a request cannot follow itself"]
    record = request.store.other(name).get(layout.REQUEST)
    if record is None:
        return [f"after_dry_run: no request '{name}' exists"]
    if not record.get("dry_run"):
        return [f"after_dry_run: request '{name}' is not a dry run"]
    if record["policy"] != request.conf.policy or record.get("subject") != request.subject:
        return [f"after_dry_run: request '{name}' was for another policy or identity"]
    return []


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
    subject: str  # the keyed fingerprint of policy and identity (in_flight), never the values

    @property
    def policy(self) -> Policy:
        return self.config.policies[self.conf.policy]

    @property
    def identity(self) -> dict[str, str]:
        """The conf's identity plus identities derived by two-way pre-webhooks (the conf's win)."""
        return {**(self.store.get(layout.DERIVED_IDENTITY) or {}), **self.conf.identity}

    def incoming_values(self, address: CollectionAddress) -> dict[str, list[Any]]:
        """Per target field, the de-duplicated, type-cast values arriving on the collection's edges."""
        collection = self.config.graph.collections[address]
        result: dict[str, list[Any]] = {}
        identity = self.identity
        for edge in self.config.plan.inputs[address]:
            if edge.source is None:
                raw = [identity[edge.source_field]] if edge.source_field in identity else []
            else:
                name = layout.values(edge.source, edge.source_field)
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
    conf = parse_conf(raw_conf, config.graph.identity_keys)
    request_id = request_id_for(conf.request_id, run_id)
    return PrivacyRequest(config, conf, request_id, RequestStore(root, request_id, key),
                          in_flight.fingerprint(key, conf.policy, conf.identity))


def claim_request_id(request: PrivacyRequest, run_id: str, received: str) -> dict[str, Any]:
    """Make ``run_id`` the owner of the request id, or fail without writing anything into the request's store.

    The record is created only if absent, so of two runs given the same request id exactly one owns it;
    the same run claiming again (a cleared validate_request) keeps its record.
    """
    record = {"request_id": request.request_id, "policy": request.conf.policy,
              "identity_types": sorted(request.conf.identity), "run_id": run_id, "received": received,
              "dry_run": request.conf.dry_run, "subject": request.subject}
    if request.store.create(layout.REQUEST, record):
        return record
    check_owner(request, run_id)
    return request.store.get(layout.REQUEST)


def check_owner(request: PrivacyRequest, run_id: str) -> None:
    """Every task but validate_request works only on a request its run owns."""
    record = request.store.get(layout.REQUEST)
    if record is None:
        raise ForeignRequestError(f"request '{request.request_id}' was never validated: clear validate_request")
    if record["run_id"] != run_id:
        raise ForeignRequestError(f"request id '{request.request_id}' is already used by run '{record['run_id']}': "
                                  "give each request its own id (nothing was written to that request)")


def claim_subject(request: PrivacyRequest) -> None:
    """Refuse this request while an earlier request for the same subject and policy is still open."""
    holder = in_flight.claim(request.store.root, request.subject, request.request_id)
    if holder:
        raise RequestError(f"request '{holder}' for the same subject and policy is still in progress: this "
                           "request is refused so that the subject is not processed twice at once; trigger it "
                           f"again once '{holder}' has finished")


def release_subject(request: PrivacyRequest) -> None:
    """The request has finished: the subject's claim is removed (a later request may claim it anyway)."""
    in_flight.release(request.store.root, request.subject, request.request_id)
