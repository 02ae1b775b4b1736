"""One request at a time per subject and policy: a later duplicate is refused while an earlier one is open.

Two erasures of the same subject running at once would both mask (with ``hash``, the last writer's salt
wins), so ``validate_request`` claims the subject first, as fides refuses duplicate requests in flight.

The claim lives at ``{storage}/_subjects/{fingerprint}/{generation}.json``. The fingerprint is an HMAC of the
policy and the identity values under the store key: the same subject always gives the same folder, and
nobody without the key can tell whose it is. The claim with the highest generation holds the subject. A
newcomer takes over only from a holder that has finished (its report says complete, rejected or failed; a
request whose failed try will be retried says "retrying" and keeps its subject) by
creating the next generation with a create-only-if-absent write, so of two newcomers racing for the same
subject exactly one wins, on a local disk as on object storage, without a lock server.

A holder whose run has ended in Airflow without the engine recording it (a worker killed for good, a heartbeat
timeout, a failure in Airflow's own code after the claim) would otherwise hold its subject forever: the
caller hands in ``ended``, which asks the orchestrator whether the holder's run is over, and such a holder
counts as finished. Nothing Airflow-specific lives here; an unknown answer counts as "still at work".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from . import layout
from .store import StoragePath


def fingerprint(key: str | bytes, policy: str, identity: dict[str, str]) -> str:
    """The subject and policy, keyed: case does not make another subject (Jane@X.com is jane@x.com)."""
    material = json.dumps([policy, sorted((k, v.strip().casefold()) for k, v in identity.items())])
    secret = key.encode() if isinstance(key, str) else key
    return hmac.new(secret, b"subject-in-flight\0" + material.encode(), hashlib.sha256).hexdigest()


# Given a request id: whether its run has ended outside the engine's knowledge (the orchestrator says so).
Ended = Callable[[str], bool]


def claim(root: StoragePath, subject: str, request_id: str, ended: Ended | None = None) -> str | None:
    """Hold ``subject`` for ``request_id``; returns the id of the open request that holds it instead, else None.

    Claiming again for the request that holds the subject (a cleared validate_request) succeeds. A holder
    whose report says it finished, or whose run ``ended`` says is over, holds nothing.
    """
    folder = root / layout.SUBJECTS / subject
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        claims = _claims(folder)
        if claims:
            generation, holder = claims[-1]
            if holder is None:  # created, its content not written yet: give the writer a moment
                holder = _holder_when_written(folder, generation)
            if holder == request_id:
                return None
            if holder is not None and not finished(root, holder) and not (ended is not None and ended(holder)):
                return holder
        else:
            generation = -1
        try:
            with (folder / f"{generation + 1:012d}.json").open("xb") as fh:
                fh.write(json.dumps({"request_id": request_id}).encode())
            return None
        except FileExistsError:
            continue  # another request claimed this generation first: look at who holds it now


def release(root: StoragePath, subject: str, request_id: str) -> None:
    """Once this request has finished, remove the older claims of its subject. The newest claim always stays
    (a finished holder blocks nobody): deleting it would reset the generations, and a newcomer that read it
    could then win a generation another newcomer wins too."""
    folder = root / layout.SUBJECTS / subject
    try:
        if sum(path.name.removesuffix(".json").isdigit() for path in folder.iterdir()) < 2:
            return  # the newest claim alone: nothing older to remove, no claim to read (a batch's every subject)
    except (FileNotFoundError, NotADirectoryError):  # object storage has no empty folders: no claim at all
        return
    claims = _claims(folder)
    if not any(holder == request_id for _, holder in claims):
        return
    for generation, _ in claims[:-1]:
        path = folder / f"{generation:012d}.json"
        if path.exists():
            path.unlink()


def _claims(folder: StoragePath) -> list[tuple[int, str | None]]:
    """(generation, holder) of every claim, oldest first; the holder is None while a claim's creator has not
    written it yet (a local file exists, empty, between its exclusive creation and its content)."""
    result: list[tuple[int, str | None]] = []
    try:
        paths = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):  # object storage has no empty folders: no claim yet
        return result
    for path in paths:
        stem = path.name.removesuffix(".json")
        if stem.isdigit():
            try:
                result.append((int(stem), _read_holder(path)))
            except FileNotFoundError:  # an older claim removed by a release meanwhile
                continue
    return sorted(result, key=lambda claim: claim[0])


def _read_holder(path: StoragePath) -> str | None:
    with path.open("rb") as fh:
        content = fh.read()
    try:
        return json.loads(content)["request_id"]
    except (ValueError, KeyError, TypeError):
        return None


def _holder_when_written(folder: StoragePath, generation: int, wait: float = 30.0) -> str | None:
    """The holder of a claim being written, once written; None if it stays empty (its writer died between
    creating and writing it, so the claim holds nobody and the next generation may be claimed). The wait is
    long: a writer descheduled on a loaded machine must not be taken for dead (two holders would follow);
    it ends as soon as the claim is written."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.01)
        holder = _read_holder(folder / f"{generation:012d}.json")
        if holder is not None:
            return holder
    return None


def finished(root: StoragePath, request_id: str) -> bool:
    """Whether the request's report says it is no longer at work (complete, rejected, failed...)."""
    return report_status(root, request_id) in layout.FINISHED


def report_status(root: StoragePath, request_id: str) -> str | None:
    """The status its report.json gives, None when it has none (yet) or it is being rewritten."""
    report = root / request_id / layout.REPORT
    if not report.exists():
        return None
    try:
        with report.open("rb") as fh:
            body: dict[str, Any] = json.loads(fh.read())
    except (OSError, ValueError):  # being rewritten right now, or unreadable: the holder is still at work
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None
