"""A digest vendor's scheduled email: every request handed to its digest since the last one, in one email,
exactly once (``vendor_email.send_once``), then each of those requests marked as told.

A digest fixes its list before sending and keeps it under its own id (the digest run's): a retry or a clear
sends the same list, and a request that arrives meanwhile waits for the next digest. The list carries what
the email and the requests' reports need, so the requests may be finished (their intermediate data deleted)
before their digest goes out; once every listed request is marked, the list keeps only the request ids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from ..errors import StepSkipped
from ..model.settings import PrivacyConfig
from ..request.report import write_report
from ..request.request import PrivacyRequest, RequestConf
from ..store import layout
from ..store.store import RequestStore, StoragePath
from .digest_queue import digest_store
from .email.render import DigestEntry, render_digest_email
from .vendor_email import Composed, Send, send_once

log = logging.getLogger(__name__)


def digest_due(cron: str, at: datetime) -> bool:
    """Whether ``cron`` fires at ``at``: one scheduled DAG serves every digest vendor's schedule, and each
    vendor's digest goes out only at its own times."""
    return croniter(cron, at - timedelta(seconds=1)).get_next(datetime) == at


def send_digest(config: PrivacyConfig, root: StoragePath, key: str | bytes, dataset: str, digest_id: str, *,
                sender: Callable[[], str], send: Send, try_number: int) -> dict[str, Any]:
    """Send the vendor's digest ``digest_id`` (fixing its list on the first try); returns its ledger entry.
    StepSkipped when no request waits."""
    target = config.mapping(dataset).email
    assert target is not None and target.digest
    store = digest_store(root, dataset, key)
    listed = _fixed_list(store, digest_id)

    def compose() -> Composed:
        entries = [DigestEntry(e["request_id"], e["instructions"]) for e in listed["entries"]]
        rendered = render_digest_email(organization=config.settings.organization, reference=f"digest {digest_id}",
                                       vendor_name=target.vendor_name, entries=entries)
        return Composed(rendered, target.to, {"requests": len(entries)})

    sent = send_once(store, layout.digest_email(digest_id), compose, sender=sender, send=send,
                     try_number=try_number)
    if "entries" in listed:
        for entry in listed["entries"]:
            _mark_told(config, RequestStore(root, entry["request_id"], key), entry, dataset, digest_id, sent)
        store.put(layout.digest_list(digest_id), {"digest_id": digest_id, "time": listed["time"],
                                                  "requests": [e["request_id"] for e in listed["entries"]],
                                                  "message_id": sent["message_id"]})
    return sent


def _fixed_list(store: RequestStore, digest_id: str) -> dict[str, Any]:
    """The digest's list: made from the pending requests on its first try (create-only, so two racing tries
    agree), read back on every later one. Listed requests leave the pending folder."""
    name = layout.digest_list(digest_id)
    listed = store.get(name)
    if listed is None:
        pending = store.list(layout.PENDING)
        if not pending:
            raise StepSkipped("no request waits for this vendor's digest: no email")
        listed = {"digest_id": digest_id, "time": datetime.now(UTC).isoformat(),
                  "entries": [store.get(n) for n in pending]}
        if not store.create(name, listed):
            listed = store.get(name)
    for entry in listed.get("entries", ()):
        store.delete(layout.pending(entry["request_id"]))
    return listed


def _mark_told(config: PrivacyConfig, request_store: RequestStore, entry: dict[str, Any], dataset: str,
               digest_id: str, sent: dict[str, Any]) -> None:
    """The request's email ledger and an ``email_sent`` event naming the digest's Message-ID (both written
    under fixed names, so a retry rewrites rather than repeats them); then its report, if it was finished
    waiting for this digest. A request still running writes its report itself when it finishes."""
    if not request_store.exists(layout.email_sent(dataset)):
        told = {key: sent[key] for key in ("recipients", "refused", "message_id", "try_number")}
        request_store.put(layout.event(datetime.fromisoformat(sent["time"]), f"digest-{dataset}"),
                          {"event": "email_sent", "time": sent["time"], "dataset": dataset, "digest": digest_id,
                           **told})
        request_store.put(layout.email_sent(dataset), {**sent, "dataset": dataset, "digest": digest_id})
    report = request_store.base / layout.REPORT
    if report.exists() and _status(report) == layout.AWAITING_DIGEST:
        request = PrivacyRequest(config, RequestConf.model_validate(entry["conf"]), entry["request_id"],
                                 request_store, subject="")
        write_report(request)  # and its certificate: now complete, with the digest's email
    log.info("Request %s: vendor '%s' told in digest %s", entry["request_id"], dataset, digest_id)


def _status(report: Any) -> str | None:
    with report.open("r") as fh:
        return json.load(fh).get("status")
