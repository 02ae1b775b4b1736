"""An erasure waits for the access requests for the same person that were received before it.

Someone who asks for a copy of their data and then for its deletion must get the whole copy: the erasure
must not mask or unlink rows before the earlier access request has read them. The one-open-request rule
(in_flight.py) keys on the policy and the identity, so it lets an access request and an erasure request for
one person run at once; this module orders them.

The rule: an access request (a policy with access rules, not a dry run) marks itself as *reading* each of its
identity values from validate_request until its access package is written (or it finishes, fails or is
rejected). An erasure step does not start while a request received before the erasure (by the run's
``run_after``, ties broken by request id) still reads one of the erasure's identity values; it waits without
holding a worker and says for which request it waits. Only earlier requests count, so a later access request
never delays an erasure (and the order is total: no two requests can wait for each other). A reader whose
run has ended without the engine recording it (``ended``, asked of the orchestrator) blocks nobody.

The marks live at ``{storage}/_readers/{person}/{request_id}.json``, ``person`` being an HMAC of one identity
type and value under the store key (policy-free: any shared value is the same person), holding only the
request id and the received time. A mark is written before the reader's first read and removed after its
package is written, so an erasure that sees no earlier mark of a live request can mask without taking
anything from an earlier reader's package.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from . import in_flight, layout
from .store import StoragePath


def persons(key: str | bytes, identity: dict[str, str]) -> list[str]:
    """One keyed fingerprint per identity value (its type included; case and surrounding blanks ignored)."""
    secret = key.encode() if isinstance(key, str) else key
    return sorted({hmac.new(secret, b"person\0" + json.dumps([k, v.strip().casefold()]).encode(),
                            hashlib.sha256).hexdigest() for k, v in identity.items() if v.strip()})


def start_reading(root: StoragePath, people: list[str], request_id: str, received: str) -> None:
    """Mark ``request_id`` as reading these persons' data (idempotent: a cleared validate_request marks again)."""
    body = json.dumps({"request_id": request_id, "received": received}).encode()
    for person in people:
        folder = root / layout.READERS / person
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{request_id}.json").open("wb") as fh:
            fh.write(body)


def stop_reading(root: StoragePath, people: list[str], request_id: str) -> None:
    """Remove the marks: the package is written (or the request will read no more)."""
    for person in people:
        path = root / layout.READERS / person / f"{request_id}.json"
        try:
            if path.exists():
                path.unlink()
        except FileNotFoundError:
            continue


def earlier_readers(root: StoragePath, people: list[str], request_id: str, received: str,
                    ended: in_flight.Ended | None = None) -> list[str]:
    """The requests received before (``received``, ``request_id``) that still read one of these persons' data,
    oldest first: marked, not finished by their report, and not ended by their run."""
    mine = (_instant(received), request_id)
    found: dict[str, tuple[datetime, str]] = {}
    for person in people:
        for other, when in _marks(root / layout.READERS / person):
            if other == request_id or other in found:
                continue
            # A mark being written has no time yet: counted as earlier until it can be read (next look).
            order = (_instant(when), other) if when else (datetime.min.replace(tzinfo=mine[0].tzinfo), other)
            if order < mine:
                found[other] = order
    return [r for r, _ in sorted(found.items(), key=lambda item: item[1])
            if not in_flight.finished(root, r) and not (ended is not None and ended(r))]


def _marks(folder: StoragePath) -> list[tuple[str, str | None]]:
    """(request id, received) of every mark; received is None while a mark is being written."""
    try:
        paths = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    result: list[tuple[str, str | None]] = []
    for path in paths:
        request_id = path.name.removesuffix(".json")
        try:
            with path.open("rb") as fh:
                body: Any = json.loads(fh.read())
        except FileNotFoundError:  # removed meanwhile
            continue
        except ValueError:
            body = None
        received = body.get("received") if isinstance(body, dict) else None
        result.append((request_id, received if isinstance(received, str) else None))
    return result


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.now().astimezone().tzinfo)
