"""A batch as the tasks see it: its conf, its store under ``{storage}/batches/{batch_id}/``, and its subjects.

The batch claims its id like a request (``request.json`` created only if absent). Each subject is a request of
its own: ``validate_request`` claims its request id and its subject (in_flight) exactly as a single request's
validate does, or rejects that subject alone, saying why in its report; the rest proceed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ForeignRequestError, RequestError
from ..model.masking import new_request_secrets
from ..model.policy import Policy
from ..model.settings import PrivacyConfig
from ..request.lifecycle import reject_request
from ..request.request import (
    POLICY_KEY_PATTERN,
    PrivacyRequest,
    RequestConf,
    check_request,
    check_vendors,
    claim_request_id,
    claim_subject,
    parse_conf,
    request_id_for,
)
from ..store import in_flight, layout
from ..store.store import REQUEST_ID_PATTERN, RequestStore, StoragePath, is_request_folder
from .source import Limits, Unreadable, check_subjects_url, read_subjects

log = logging.getLogger(__name__)


class BatchConf(BaseModel):
    """The trigger conf of a batch; each subject is checked on its own later (a bad one is rejected alone)."""

    model_config = ConfigDict(extra="forbid")

    batch_id: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)
    policy: str = Field(pattern=POLICY_KEY_PATTERN)
    subjects: list[Any] | None = None
    subjects_url: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> BatchConf:
        if (self.subjects is None) == (self.subjects_url is None):
            raise ValueError("give either 'subjects' (a list of {request_id, identity}) or 'subjects_url' (a JSON "
                             "Lines file of them), not both and not neither")
        return self


def parse_batch_conf(raw: Any) -> BatchConf:
    """The conf as sent, checked; errors name the field, never echo a value."""
    if not isinstance(raw, dict):
        raise RequestError(f"invalid batch conf: expected a JSON object, got {type(raw).__name__}")
    try:
        return BatchConf.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])[:60] or 'conf'}: {e['msg']}" for e in exc.errors())
        raise RequestError(f"invalid batch conf: {details}") from None


@dataclass(frozen=True)
class Subject:
    """An accepted subject: its position in the batch (provenance refers to it), request id and identity."""

    position: int
    request_id: str
    identity: dict[str, str]


@dataclass
class Batch:
    """What every batch task needs. ``request`` is the batch seen as one request (its store, policy and
    secrets) for the steps a batch shares with a single request: results, the erasure ledger, emails."""

    config: PrivacyConfig
    conf: BatchConf
    batch_id: str
    root: StoragePath
    key: str
    store: RequestStore

    @property
    def request_id(self) -> str:
        return self.batch_id

    @property
    def policy(self) -> Policy:
        return self.config.policies[self.conf.policy]

    @property
    def request(self) -> PrivacyRequest:
        conf = RequestConf.model_construct(request_id=self.batch_id, policy=self.conf.policy, identity={})
        return PrivacyRequest(self.config, conf, self.batch_id, self.store, subject="")

    def subjects(self) -> Iterator[Subject]:
        """The accepted subjects, streamed in their order."""
        for position, item in enumerate(self.store.read_rows(layout.BATCH_SUBJECTS)):
            yield Subject(position, item["request_id"], item["identity"])

    def subject_request(self, subject: Subject) -> PrivacyRequest:
        """A subject as the single request it is: its own folder, conf and in-flight fingerprint."""
        conf = RequestConf.model_construct(request_id=subject.request_id, policy=self.conf.policy,
                                           identity=subject.identity)
        return PrivacyRequest(self.config, conf, subject.request_id, RequestStore(self.root, subject.request_id,
                                                                                  self.key),
                              in_flight.fingerprint(self.key, self.conf.policy, subject.identity))


def open_batch(config: PrivacyConfig, raw_conf: Any, run_id: str, root: StoragePath, key: str) -> Batch:
    conf = parse_batch_conf(raw_conf)
    batch_id = request_id_for(conf.batch_id, run_id)
    return Batch(config, conf, batch_id, root, key, RequestStore(root / layout.BATCHES, batch_id, key))


def batch_subjects_source(batch: Batch, open_remote: Callable[[str], BinaryIO]) -> Iterator[Any]:
    """The batch's subjects as given: the conf's list (at most ``batch.max_subjects``), or the subjects file,
    whose URL is checked against ``batch.subjects_from`` before anything is opened, and which is then read
    within the limits of privacy.yml's ``batch`` settings (source.py). Lazy: nothing is checked or opened
    before start_batch has claimed the batch id."""
    settings = batch.config.settings.batch
    if batch.conf.subjects is not None:
        if len(batch.conf.subjects) > settings.max_subjects:
            raise RequestError(f"the batch has {len(batch.conf.subjects)} subjects, more than {settings.max_subjects} "
                               "(privacy.yml batch.max_subjects): split it into several batches")
        yield from batch.conf.subjects
        return
    source = check_subjects_url(batch.conf.subjects_url or "", settings.subjects_from)
    limits = Limits(settings.max_line_bytes, settings.max_file_bytes, settings.max_subjects)
    yield from read_subjects(source, limits, open_remote)


def batch_problems(config: PrivacyConfig, policy_key: str) -> list[str]:
    """What a batch cannot do, known before anything is touched: a person in the loop (manual collections,
    approval) or webhooks, which speak for one subject at a time."""
    if policy_key not in config.policies:
        return [f"unknown policy '{policy_key}'; configured: {', '.join(sorted(config.policies))}"]
    policy = config.policies[policy_key]
    problems = []
    manual = sorted(d for d in config.datasets if config.mapping(d).kind == "manual")
    if manual:
        problems.append(f"datasets answered by a person (manual: true in privacy.yml: {', '.join(manual)}) are not "
                        "supported in batches: trigger privacy_request for each subject instead")
    if policy.manual_approval:
        problems.append(f"policy '{policy_key}' asks for manual approval, which batches do not support")
    if policy.webhooks.pre or policy.webhooks.post:
        problems.append(f"policy '{policy_key}' has webhooks, which batches do not support")
    return problems


def start_batch(batch: Batch, run_id: str, received: str, subjects: Iterable[Any],
                deployment_problems: Callable[[], list[str]] = list) -> dict[str, Any]:
    """Claim the batch id, check what holds for the whole batch, then each subject alone: accepted subjects
    are claimed like single requests and stored (encrypted) in order; rejected ones get a report saying why.
    Fails when no subject is valid. Returns counts (nothing personal)."""
    record = {"request_id": batch.batch_id, "policy": batch.conf.policy, "run_id": run_id, "received": received,
              "batch": True}
    if not batch.store.create(layout.REQUEST, record):
        owner = batch.store.get(layout.REQUEST)
        if owner["run_id"] != run_id:
            raise ForeignRequestError(f"batch id '{batch.batch_id}' is already used by run '{owner['run_id']}': give "
                                      "each batch its own id (nothing was written to that batch)")
    config = batch.config
    problems = batch_problems(config, batch.conf.policy)
    if not problems and batch.policy.erasure_rules:
        problems += check_vendors(config) + deployment_problems()
    if problems:
        raise RequestError("batch rejected: " + "; ".join(problems))
    if not batch.store.exists(layout.SECRETS):
        batch.store.put(layout.SECRETS, new_request_secrets())
    rejected: list[dict[str, Any]] = []
    seen: set[str] = set()
    stopped: list[Exception] = []

    def accepted() -> Iterator[dict[str, Any]]:
        try:
            for position, raw in enumerate(subjects, start=1):
                subject, reason = _admit(batch, raw, run_id, received, seen)
                if subject is None:
                    rejected.append({"position": position, **reason})
                    continue
                yield subject
        except Exception as exc:  # e.g. the subjects file broke off: keep who was claimed, then fail
            stopped.append(exc)

    # Every claimed subject is stored before a failure is raised, so the failure's reports free them all.
    count = batch.store.write_rows(layout.BATCH_SUBJECTS, accepted())
    batch.store.write_rows(layout.BATCH_REJECTED, rejected)
    if stopped:
        raise stopped[0]
    if not count:
        shown = "; ".join(f"subject {r['position']}: {r['reason']}" for r in rejected[:5])
        raise RequestError(f"batch rejected: no valid subject ({len(rejected)} rejected: {shown or 'none given'}"
                           f"{'; ...' if len(rejected) > 5 else ''})")
    batch.store.add_event("batch_validated", policy=batch.conf.policy, subjects=count, rejected=len(rejected))
    log.info("Batch %s: %d subject(s) accepted, %d rejected", batch.batch_id, count, len(rejected))
    return {"batch_id": batch.batch_id, "subjects": count, "rejected": len(rejected)}


def _admit(batch: Batch, raw: Any, run_id: str, received: str,
           seen: set[str]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """One subject: (its stored form, {}) when accepted, else (None, {request_id?, reason})."""
    if isinstance(raw, Unreadable):
        return None, {"reason": raw.reason}
    request_id = raw.get("request_id") if isinstance(raw, dict) else None
    if not isinstance(request_id, str) or not is_request_folder(request_id):
        return None, {"reason": "no request_id that can name a folder (1 to 128 letters, digits, '.', '_' or '-', "
                                "starting with a letter or digit)"}
    if request_id in seen:
        return None, {"request_id": request_id, "reason": "request id given twice in this batch"}
    seen.add(request_id)
    reason = None
    try:
        # Names from the input are never echoed: a subjects file may be anything (a key file, an environment).
        unknown = set(raw) - {"request_id", "identity"}
        if unknown:
            raise RequestError(f"{len(unknown)} unknown field(s): a subject has only request_id and identity")
        identity = raw.get("identity")
        types = set(identity) - batch.config.graph.identity_keys if isinstance(identity, dict) else set()
        if types:
            raise RequestError(f"{len(types)} unknown identity type(s); datasets use "
                               f"{sorted(batch.config.graph.identity_keys)}")
        conf = parse_conf({"request_id": request_id, "policy": batch.conf.policy, "identity": raw.get("identity")})
        problems = check_request(batch.config, conf)
        reason = "; ".join(problems) or None
    except RequestError as exc:
        conf = RequestConf.model_construct(request_id=request_id, policy=batch.conf.policy, identity={})
        reason = str(exc).removeprefix("invalid request conf: ")
    request = PrivacyRequest(batch.config, conf, request_id, RequestStore(batch.root, request_id, batch.key),
                             in_flight.fingerprint(batch.key, conf.policy, conf.identity))
    try:
        claim_request_id(request, run_id, received)
    except ForeignRequestError:  # another request's folder: nothing is written there
        return None, {"request_id": request_id, "reason": "request id already used by an earlier request"}
    if reason is None:
        try:
            claim_subject(request)
        except RequestError as exc:
            reason = str(exc)
    if reason is not None:
        reject_request(request, by="validate_request", reason=reason, batch_id=batch.batch_id)
        return None, {"request_id": request_id, "reason": reason}
    request.store.add_event("request_validated", policy=conf.policy, identity_types=sorted(conf.identity),
                            batch_id=batch.batch_id)
    return {"request_id": request_id, "identity": conf.identity}, {}
