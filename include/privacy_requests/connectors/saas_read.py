"""The SaaS connector's access: read requests filled in from the values that arrived on the collection's edges,
all pages, ``data_path`` and postprocessors; each record keeps the input values it was found with."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from itertools import product
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from ..errors import DataSourceError, RequestError
from ..model.graph import Collection, CollectionAddress
from ..model.saas_format import ReadRequest, SaasRequest
from ..model.saas_strategies import Cursor, Filter, Link, Offset, Unwrap
from ..request.request import PrivacyRequest
from ..store import layout
from .base import Found
from .saas_client import SaasClient
from .saas_http import MAX_PAGES, MissingValue, Prepared, dig, flatten, read_json, replaced


class SaasReader(SaasClient):
    """Finds a subject's records through the read requests of a collection's endpoint."""

    # -- access ----------------------------------------------------------------------------------------
    def retrieve(self, request: PrivacyRequest, collection: Collection, inputs: dict[str, list[Any]]) -> Found:
        if not any(inputs.values()):
            return Found([])
        endpoint = self.config.endpoint(collection.address.collection)
        jobs = [(read, values) for read in endpoint.requests.reads
                for values in self.param_maps(read, inputs, request)]
        identity = request.identity
        pages = self._run(lambda job: self.read_all(job[0], job[1], identity, str(collection.address)), jobs)
        return Found(distinct_records(collection, (row for rows in pages for row in rows)))

    def param_maps(self, read: ReadRequest, inputs: Mapping[str, list[Any]],
                   request: PrivacyRequest | None = None) -> list[dict[str, Any]]:
        """One map of param values per request to send: the product of the input values, grouped inputs kept
        together as one upstream row held them; none when an input has no value (the request is not sent)."""
        given = [p for p in read.param_values if p.is_input]
        if any(not inputs.get(p.name) for p in given):
            return []
        constants = {p.name: self.connector_params.get(p.connector_param or "") for p in read.param_values
                     if p.connector_param}
        grouped = [p for p in given if p.name in read.grouped_inputs]
        free = [p for p in given if p.name not in read.grouped_inputs]
        groups = input_groups(grouped, inputs, request) if grouped else [{}]
        maps = []
        for group in groups:
            for combo in product(*(inputs[p.name] for p in free)):
                maps.append({**constants, **group, **dict(zip((p.name for p in free), combo, strict=True))})
        return maps

    def read_all(self, read: ReadRequest, values: dict[str, Any], identity: Mapping[str, Any],
                 where: str) -> list[dict[str, Any]]:
        """Every record one read request finds with one map of values, all pages."""
        try:
            prepared: Prepared | None = self.prepare(read, values)
        except MissingValue as exc:
            if read.skip_missing_param_values:
                return []
            raise DataSourceError(f"{where}: {read.method} {read.path}: placeholder <{exc}> has no value") from None
        records: list[dict[str, Any]] = []
        seen: set[str] = set()
        pages = 0
        while prepared is not None:
            if prepared.signature() in seen or pages >= MAX_PAGES:
                raise DataSourceError(f"{where}: {read.method} {read.path}: pagination does not end (the same page "
                                      "was asked twice)")
            seen.add(prepared.signature())
            pages += 1
            response = self.send(prepared, read, where)
            body = read_json(response, where, prepared)
            page = dig(body, read.data_path) if read.data_path else body
            for record in self.postprocess(page, read, values, identity, where):
                for p in read.param_values:
                    if p.is_input:
                        record.setdefault(p.name, values[p.name])
                records.append(record)
            prepared = self.next_page(read, prepared, body, page, response, where) if response is not None else None
        return records

    def postprocess(self, data: Any, read: SaasRequest, values: Mapping[str, Any], identity: Mapping[str, Any],
                    where: str) -> list[dict[str, Any]]:
        for step in read.postprocessors or []:
            if isinstance(step, Unwrap):
                if isinstance(data, list):
                    data = flatten([dig(item, step.configuration.data_path) for item in data])
                else:
                    data = dig(data, step.configuration.data_path)
            elif isinstance(step, Filter):
                data = filter_records(data, step, values, identity, read)
        if not data:
            return []
        records = data if isinstance(data, list) else [data]
        if not all(isinstance(r, dict) for r in records):
            raise DataSourceError(f"{where}: {read.method} {read.path}: the records (after data_path and "
                                  "postprocessors) are not objects")
        return [dict(r) for r in records]

    def next_page(self, read: SaasRequest, prepared: Prepared, body: Any, page: Any, response: httpx.Response,
                  where: str) -> Prepared | None:
        strategy = read.pagination
        if strategy is None:
            return None
        if isinstance(strategy, Offset):
            if not page:
                return None
            conf = strategy.configuration
            limit = conf.limit
            if limit is not None and not isinstance(limit, int):
                try:
                    limit = int(self.connector_params[limit.connector_param])
                except (KeyError, TypeError, ValueError):
                    raise RequestError(f"{where}: offset pagination: connector param "
                                       f"'{limit.connector_param}' is not a whole number") from None
            try:
                current = int(prepared.query[conf.incremental_param])
            except (KeyError, TypeError, ValueError):
                raise DataSourceError(f"{where}: offset pagination: query param '{conf.incremental_param}' is not "
                                      "a number") from None
            following = current + conf.increment_by
            if limit and following > limit:
                return None
            return replaced(prepared, query={**prepared.query, conf.incremental_param: following})
        if isinstance(strategy, Cursor):
            conf = strategy.configuration
            cursor = dig(page[-1], conf.field) if isinstance(page, list) and page else None
            if cursor is None:
                cursor = dig(body, conf.field)
            if cursor is None:
                return None
            return replaced(prepared, query={**prepared.query, conf.cursor_param: cursor})
        if isinstance(strategy, Link):
            if not page:
                return None
            conf = strategy.configuration
            if conf.source == "headers":
                link = response.links.get(conf.rel or "", {}).get("url")
            else:
                link = dig(body, conf.path)
            if not link:
                return None
            url = urlsplit(str(link))
            if url.netloc and url.netloc != urlsplit(self.base_url).netloc:
                raise DataSourceError(f"{where}: {read.method} {read.path}: the next page's link points to another "
                                      "host; not followed (the credentials would go with it)")
            return replaced(prepared, path=url.path, query=dict(parse_qsl(url.query)))
        return None

def filter_records(data: Any, step: Filter, values: Mapping[str, Any], identity: Mapping[str, Any],
            read: SaasRequest) -> Any:
    conf = step.configuration
    wanted = conf.value
    if not isinstance(wanted, (str, int)):
        name = next((p.name for p in read.param_values if p.identity == wanted.identity), None)
        wanted = values.get(name) if name else identity.get(wanted.identity)
        if wanted is None:
            return []

    def norm(v: Any) -> Any:
        return v.casefold() if isinstance(v, str) and not conf.case_sensitive else v

    def matches(item: Any) -> bool:
        target = dig(item, conf.field)
        targets = target if isinstance(target, list) else [target]
        for t in targets:
            if t is None:
                continue
            if isinstance(t, str) and isinstance(wanted, str):
                if (norm(wanted) == norm(t)) if conf.exact else (norm(wanted) in norm(t)):
                    return True
            elif t == wanted or str(t) == str(wanted):
                return True
        return False

    if isinstance(data, list):
        return [item for item in data if matches(item)]
    return data if data and matches(data) else []


def input_groups(grouped: list[Any], inputs: Mapping[str, list[Any]], request: PrivacyRequest | None
            ) -> list[dict[str, Any]]:
    """The grouped inputs as the upstream rows held them together, restricted to the values that arrived."""
    ref = grouped[0].references[0]
    source = CollectionAddress(ref.dataset, ref.field.split(".")[0])
    if request is None or not request.store.exists(layout.rows(source)):
        return []
    allowed = {p.name: {json.dumps(v, default=str) for v in inputs[p.name]} for p in grouped}
    groups: dict[str, dict[str, Any]] = {}
    for item in request.store.read_rows(layout.rows(source)):
        row = item["row"] if "row" in item and "subjects" in item else item  # a batch's rows carry their subjects
        group = {p.name: dig(row, p.references[0].field.split(".", 1)[1]) for p in grouped}
        if all(json.dumps(v, default=str) in allowed[k] for k, v in group.items()):
            groups.setdefault(json.dumps(group, sort_keys=True, default=str), group)
    return list(groups.values())


def distinct_records(collection: Collection, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each record once (by primary key, else by content): two read requests can find the same record."""
    keys = [f.path for f in collection.primary_keys]
    seen: set[str] = set()
    for row in rows:
        key = json.dumps([dig(row, k) for k in keys] if keys else row, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            yield row
