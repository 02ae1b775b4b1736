"""SaaS connector: access and erasure through a vendor's HTTP API, as a fides SaaS config describes it
(saas_config.py). Plain Python: the HTTP client (an ``httpx.Client``) and the connector params (from the
Airflow connection) are handed in by the wing.

- Access: every read request of the collection whose inputs (identity, references) have values, once per
  combination of values (``grouped_inputs`` keep the values of one upstream row together), following the
  pagination; ``data_path`` and the postprocessors turn each page into records. The input values a record was
  found with are kept in it (under the param's name, never over a field the API returned), so a batch knows
  whose record it is and proof of erasure can look it up again.
- Erasure: one update (masked fields in the body placeholders) or delete per record, each recorded in the
  request's ledger once it succeeded: a cleared task sends only what is missing. Then the proof: the same
  reads again; an updated record read back must hold its masked values, a deleted one must be gone.
- Errors: 429 and 5xx are retried with backoff honouring ``Retry-After``, then left to the task's retries
  (TransientError); any other 4xx not in ``ignore_errors`` fails with the status and the endpoint's path
  template, never the body or the filled-in path (either can hold personal data).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ..errors import DataSourceError, RequestError
from ..model.graph import Collection
from ..model.masking import FieldMask, Masker
from ..model.saas_format import ALL_OBJECT_FIELDS, MASKED_OBJECT_FIELDS, ReadRequest, SaasRequest
from ..store import layout
from .base import Erased, ErasureWork
from .saas_http import MissingValue, Prepared, dig, holds, unflatten
from .saas_read import SaasReader

log = logging.getLogger(__name__)


class SaasConnector(SaasReader):
    """A SaaS dataset: access (saas_read.py) and erasure, with its proof and its dry-run plan."""

    # -- erasure -----------------------------------------------------------------------------------------
    def erasure_request(self, collection: Collection) -> tuple[str, SaasRequest | None]:
        requests = self.config.endpoint(collection.address.collection).requests
        if requests.delete and (self.erase_by == "delete" or not requests.update):
            return "delete", requests.delete
        return "update", requests.update

    def erase(self, work: ErasureWork) -> Erased:
        collection, store = work.collection, work.request.store
        action, request = self.erasure_request(collection)
        if request is None:
            reason = "the SaaS config has no update or delete request for this endpoint: nothing erased"
            log.warning("%s: %s", collection.address, reason)
            return Erased("no_erasure_request", detail={"reason": reason})
        masks = self.masks(work)
        if not masks:
            log.info("%s: no field matches the erasure targets", collection.address)
            return Erased("nothing_to_erase")
        secrets = masking_secrets(work)
        jobs = list(self._erasure_jobs(work, action, request, masks))
        where = str(collection.address)

        def do(job: tuple[dict[str, Any], Prepared | None]) -> str:
            row, prepared = job
            if prepared is None:
                return "skipped"
            entry = ledger_name(self.dataset, collection, prepared, secrets)
            if store.exists(entry):
                return "done_before"
            # A delete that finds the record gone (404/410: an earlier try whose success was not recorded, or
            # the vendor's own deletion) has reached what it was sent for.
            self.send(prepared, request, where, gone_ok=action == "delete")
            store.create(entry, {"action": action, "time": datetime.now(UTC).isoformat()})
            return "sent"

        outcomes = self._run(do, jobs)
        sent, before = outcomes.count("sent"), outcomes.count("done_before")
        skipped = outcomes.count("skipped")
        proof = self.verify(work, action, request, masks, list(zip(jobs, outcomes, strict=True)), secrets)
        detail = {"action": action, "fields": sorted(masks), "requests": sent, "already_done": before,
                  "skipped_missing_values": skipped, **proof}
        log.info("%s: %d %s request(s) sent, %d done by an earlier try, %d skipped (missing values), of %d "
                 "record(s); %d verified, %d no longer found", where, sent, action, before, skipped, len(jobs),
                 proof["verified"], proof["gone"])
        return Erased("complete", masked=sent + before, detail=detail,
                      event={"event": "saas_records_erased", "action": action, "records": sent + before,
                             "fields": sorted(masks)})

    def masks(self, work: ErasureWork) -> dict[str, FieldMask]:
        """The erasable fields the API can be asked to change (read-only fields left out), with strategies."""
        chosen = {path: spec for path, spec in work.fields.items()
                  if not (work.collection.field(path) and work.collection.field(path).read_only)}
        if not chosen:
            return {}
        secrets = work.request.store.get(layout.SECRETS)
        if secrets is None:
            raise RequestError("masking secrets are missing: clear validate_request to make them")
        return {path: FieldMask(Masker(spec.strategy, spec.configuration, secrets),
                                work.collection.field(path).length if work.collection.field(path) else None)
                for path, spec in chosen.items()}

    def _erasure_jobs(self, work: ErasureWork, action: str, request: SaasRequest,
                      masks: dict[str, FieldMask]) -> Iterator[tuple[dict[str, Any], Prepared | None]]:
        """Per record found (each once), the update or delete to send; None where a value is missing and the
        request says to skip it."""
        collection = work.collection
        declared = self.declared.get(collection.address.collection)
        seen: set[str] = set()
        for row in work.rows():
            values = self.erasure_values(work, request, row)
            masked = {path: mask.apply(dig(row, path)) for path, mask in masks.items() if dig(row, path) is not None}
            if action == "update" and not masked:
                continue  # nothing of the record holds a value to erase
            kept = {k: v for k, v in row.items() if (declared is None or k in declared)
                    and not (collection.field(k) and collection.field(k).read_only)}
            values[MASKED_OBJECT_FIELDS] = unflatten(masked)
            values[ALL_OBJECT_FIELDS] = whole = unflatten(masked, kept)
            for fld in collection.fields:  # a read-only field inside an object is left out too (fides unsets it)
                if fld.read_only and "." in fld.path:
                    parent = dig(whole, fld.path.rsplit(".", 1)[0])
                    if isinstance(parent, dict):
                        parent.pop(fld.path.rsplit(".", 1)[1], None)
            try:
                prepared = self.prepare(request, values)
            except MissingValue as exc:
                if request.skip_missing_param_values:
                    yield row, None
                    continue
                raise DataSourceError(f"{collection.address}: {request.method} {request.path}: placeholder "
                                      f"<{exc}> has no value in a record found") from None
            if prepared.signature() in seen:
                continue
            seen.add(prepared.signature())
            row["__masked__"] = masked
            yield row, prepared

    def erasure_values(self, work: ErasureWork, request: SaasRequest, row: dict[str, Any]) -> dict[str, Any]:
        """An update's or delete's param values: references from the record, identities from the record's
        identity fields (a batch) or the request, connector params from the connection."""
        values: dict[str, Any] = {}
        identity = (lambda: work.request.identity) if any(p.identity for p in request.param_values) else dict
        for p in request.param_values:
            if p.references:
                values[p.name] = dig(row, p.references[0].field.split(".", 1)[1])
            elif p.identity:
                held = [row.get(f.path) for f in work.collection.fields if f.identity == p.identity]
                values[p.name] = next((v for v in held if v is not None), None) or identity().get(p.identity)
            elif p.connector_param:
                values[p.name] = self.connector_params.get(p.connector_param)
        return values

    # -- proof of erasure --------------------------------------------------------------------------------
    def verify(self, work: ErasureWork, action: str, request: SaasRequest, masks: dict[str, FieldMask],
               jobs: list[tuple[tuple[dict[str, Any], Prepared | None], str]], secrets: dict[str, Any]
               ) -> dict[str, int]:
        """Read the erased records again with the values they were found with. An updated record read back
        must hold its masked values (one no longer found, its identity masked, counts as gone); a deleted
        record must be gone. Records that fail lose their ledger entry, so a clear sends them again."""
        collection = work.collection
        erased = [(row, p, outcome) for (row, p), outcome in jobs if p is not None]
        if not erased:
            return {"verified": 0, "gone": 0}
        endpoint = self.config.endpoint(collection.address.collection)
        lookups: dict[str, tuple[ReadRequest, dict[str, Any]]] = {}
        for row, _, _ in erased:
            for read in endpoint.requests.reads:
                inputs = {p.name: [row[p.name]] for p in read.param_values if p.is_input and p.name in row}
                for values in self.param_maps(read, inputs, work.request):
                    lookups.setdefault(json.dumps([read.path, values], sort_keys=True, default=str), (read, values))
        identity = work.request.identity
        where = str(collection.address)
        found = self._run(lambda job: self.read_all(job[0], job[1], identity, where), list(lookups.values()))
        after: dict[str, dict[str, Any]] = {}
        for rows in found:
            for row in rows:
                after[self.record_key(work, request, row)] = row
        verified = gone = 0
        failed: list[Prepared] = []
        for row, prepared, outcome in erased:
            again = after.get(self.record_key(work, request, row))
            if again is None:
                gone += 1
            elif action == "delete":
                failed.append(prepared)  # type: ignore[arg-type]
            elif all(holds(dig(again, path), value)
                     or (outcome == "done_before" and dig(again, path) != dig(row, path))
                     for path, value in row["__masked__"].items()):
                verified += 1  # (a value masked by an earlier try: a random mask differs from this try's)
            else:
                failed.append(prepared)  # type: ignore[arg-type]
        if failed:
            for prepared in failed:
                work.request.store.delete(ledger_name(self.dataset, collection, prepared, secrets))
            raise DataSourceError(
                f"{where}: erasure not verified: {len(failed)} of {len(erased)} record(s) read back "
                f"{'still exist' if action == 'delete' else 'do not hold their masked values'}; fix the cause "
                "and clear this task: it sends only those again")
        work.request.store.add_event("erasure_verified", collection=where, rows=verified, gone=gone,
                                     fields=len(masks))
        return {"verified": verified, "gone": gone}

    def record_key(self, work: ErasureWork, request: SaasRequest, row: dict[str, Any]) -> str:
        """What identifies a record: its primary key, else the fields the erasure request addresses it by."""
        keys = [f.path for f in work.collection.primary_keys]
        if not keys:
            keys = [p.references[0].field.split(".", 1)[1] for p in request.param_values if p.references]
        if not keys:
            return json.dumps({k: v for k, v in row.items() if k != "__masked__"}, sort_keys=True, default=str)
        return json.dumps([dig(row, k) for k in keys], default=str)

    # -- dry run -----------------------------------------------------------------------------------------
    def plan(self, work: ErasureWork) -> dict[str, Any]:
        """The requests erasure would send (method, path template, how many, which fields); none is sent."""
        action, request = self.erasure_request(work.collection)
        fields = {path: {"strategy": spec.strategy} for path, spec in sorted(work.fields.items())}
        if request is None:
            return {"rows": 0, "fields": fields, "requests": [],
                    "skipped": {"*": "the SaaS config has no update or delete request for this endpoint"}}
        masks = self.masks(work)
        jobs = list(self._erasure_jobs(work, action, request, masks)) if masks else []
        count = sum(1 for _, p in jobs if p is not None)
        return {"rows": count, "fields": fields, "by": f"{action} requests to the {self.config.name} API",
                "requests": [{"method": request.method, "path": request.path, "count": count,
                              "fields": sorted(masks) if action == "update" else []}],
                "skipped": {"missing values": str(len(jobs) - count)} if len(jobs) > count else {}}


def masking_secrets(work: ErasureWork) -> dict[str, Any]:
    secrets = work.request.store.get(layout.SECRETS)
    if secrets is None:
        raise RequestError("masking secrets are missing: clear validate_request to make them")
    return secrets


def ledger_name(dataset: str, collection: Collection, prepared: Prepared, secrets: dict[str, Any]) -> str:
    """One create-only ledger document per request sent; its name is a keyed digest of the request, so it
    tells nothing of the record (a path can hold an id derived from an email address)."""
    key = hashlib.sha256(json.dumps(secrets, sort_keys=True).encode()).digest()
    digest = hashlib.blake2b(prepared.signature().encode(), key=key[:32], digest_size=20).hexdigest()
    return f"{layout.LEDGER}/saas/{dataset}.{collection.address.collection}/{digest}.json"
