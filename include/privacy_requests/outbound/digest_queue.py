"""A request's vendor instructions handed to the vendor's next digest email, instead of an email of its own.

Each digest vendor has a store of its own, ``{storage}/_digests/<dataset>/`` (a name no request id can take),
encrypted like a request's: the instructions hold personal data (the locator values). The request's own
ledger records the hand-over, so a cleared or retried task never hands the same request over twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..request.request import PrivacyRequest
from ..store import layout
from ..store.store import RequestStore, StoragePath

log = logging.getLogger(__name__)


def digest_store(root: StoragePath, dataset: str, key: str | bytes) -> RequestStore:
    """The store of one digest vendor's pending requests, digests and their email ledger."""
    return RequestStore(root / layout.DIGESTS, dataset, key)


def queue_for_digest(request: PrivacyRequest, dataset: str,
                     instructions: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    """Record the request's instructions as pending for the vendor's next digest; returns the request's record of
    it (or the digest's sent entry, when the digest went out already). ``instructions`` runs only the first
    time (it may raise StepSkipped: nothing to erase, nothing to hand over)."""
    store = request.store
    sent = store.get(layout.email_sent(dataset))
    if sent:
        log.info("Vendor '%s' was told in digest %s (Message-ID %s)", dataset, sent.get("digest"), sent["message_id"])
        return sent
    queued = store.get(layout.email_awaiting_digest(dataset))
    if queued:
        log.info("Already waiting for the digest of '%s' since %s", dataset, queued["time"])
        return queued
    target = request.config.mapping(dataset).email
    assert target is not None and target.digest
    items = instructions()
    now = datetime.now(UTC).isoformat()
    pending = {"request_id": request.request_id, "instructions": items, "time": now,
               "conf": request.conf.model_dump(exclude_none=True)}
    # Create-only: a request id already pending keeps its first entry (a retry after a crash between the two
    # writes below finds it there and only adds the request's record).
    store.beside(layout.DIGESTS, dataset).create(layout.pending(request.request_id), pending)
    record = {"dataset": dataset, "time": now, "schedule": target.digest, "collections": len(items)}
    store.put(layout.email_awaiting_digest(dataset), record)
    store.add_event("email_awaiting_digest", dataset=dataset, schedule=target.digest, collections=len(items))
    log.info("Instructions for '%s' (%d collection(s)) wait for its digest (%s)", dataset, len(items), target.digest)
    return record
