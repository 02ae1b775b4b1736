"""The dataset graph: collections as nodes, references and identities as edges; framework-free.

The Airflow DAG is static, so the traversal is planned once, as if every identity type were supplied:
bidirectional references are oriented from the collection reached first to the one reached later, and a
collection waits for all its directed inputs (as fidesops re-ran a node for a late parent). A request that
supplies fewer identities runs the same plan; collections it cannot reach make it fail up front.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fideslang.models import Dataset, DatasetField, FidesDatasetReference

from ..errors import Problem


@dataclass(frozen=True, order=True)
class CollectionAddress:
    """``dataset:collection``; ``task_suffix`` is the ``dataset.collection`` part of a task id."""

    dataset: str
    collection: str

    def __str__(self) -> str:
        return f"{self.dataset}:{self.collection}"

    @property
    def task_suffix(self) -> str:
        return f"{self.dataset}.{self.collection}"


@dataclass(frozen=True)
class FieldSpec:
    """A leaf or object field; ``path`` is dotted for nested fields (``report_card.grades``)."""

    path: str
    data_categories: tuple[str, ...] = ()
    identity: str | None = None
    primary_key: bool = False
    data_type: str | None = None
    length: int | None = None
    read_only: bool = False
    is_object: bool = False

    @property
    def column(self) -> str:
        """The top-level column that holds this field."""
        return self.path.split(".", 1)[0]


@dataclass(frozen=True)
class Input:
    """One incoming edge of a collection: values of ``source_field`` feed ``target_field``.

    ``source`` is None for an identity seed, whose ``source_field`` is the identity key (``email``).
    """

    source: CollectionAddress | None
    source_field: str
    target_field: str


@dataclass
class Collection:
    address: CollectionAddress
    fields: list[FieldSpec]
    after: set[CollectionAddress] = field(default_factory=set)
    erase_after: set[CollectionAddress] = field(default_factory=set)

    def field(self, path: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.path == path), None)

    @property
    def leaf_fields(self) -> list[FieldSpec]:
        return [f for f in self.fields if not f.is_object]

    @property
    def primary_keys(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.primary_key]

    @property
    def columns(self) -> list[str]:
        """Top-level columns to select, in declaration order, without duplicates."""
        return list(dict.fromkeys(f.column for f in self.fields))


@dataclass(frozen=True)
class _Reference:
    src: CollectionAddress
    src_field: str
    dst: CollectionAddress
    dst_field: str
    bidirectional: bool


@dataclass
class TraversalPlan:
    """The static access plan: an order that respects every dependency, and each collection's inputs."""

    order: list[CollectionAddress]
    inputs: dict[CollectionAddress, list[Input]]
    after: dict[CollectionAddress, set[CollectionAddress]]

    def upstream(self, address: CollectionAddress) -> set[CollectionAddress]:
        """Collections whose access task must finish before this one's (data edges and ``after``)."""
        sources = {i.source for i in self.inputs[address] if i.source is not None}
        return sources | self.after.get(address, set())

    def out_fields(self, address: CollectionAddress) -> set[str]:
        """Fields of this collection whose values feed other collections."""
        return {
            i.source_field for inputs in self.inputs.values() for i in inputs if i.source == address
        }

    def unreachable(self, identity_keys: Iterable[str]) -> list[CollectionAddress]:
        """Collections no supplied identity leads to, following the planned edges."""
        keys = set(identity_keys)
        reached: set[CollectionAddress] = set()
        for address in self.order:
            if any(
                (i.source is None and i.source_field in keys) or i.source in reached
                for i in self.inputs[address]
            ):
                reached.add(address)
        return [a for a in self.order if a not in reached]


class DatasetGraph:
    """All collections of all datasets, with their references, identities and ordering constraints."""

    def __init__(self, collections: dict[CollectionAddress, Collection], references: list[_Reference]):
        self.collections = collections
        self.references = references
        # References by the collections they touch, so planning stays linear in the graph's size.
        self._touching: dict[CollectionAddress, list[_Reference]] = {a: [] for a in collections}
        for ref in references:
            self._touching[ref.src].append(ref)
            if ref.dst != ref.src:
                self._touching[ref.dst].append(ref)

    @property
    def identity_keys(self) -> set[str]:
        return {f.identity for c in self.collections.values() for f in c.fields if f.identity}

    def plan(self) -> tuple[TraversalPlan, list[str]]:
        """Plan the access traversal; returns the plan and the cycles found (as messages)."""
        seeds = {a for a, c in self.collections.items() if any(f.identity for f in c.fields)}
        depth = self._depths(seeds)
        reachable = set(depth)
        directed_in: dict[CollectionAddress, set[CollectionAddress]] = {a: set() for a in self.collections}
        for ref in self.references:
            if not ref.bidirectional and ref.src in reachable:
                directed_in[ref.dst].add(ref.src)
        after = {a: {b for b in c.after if b in reachable} for a, c in self.collections.items()}
        feeders: dict[CollectionAddress, set[CollectionAddress]] = {a: set() for a in self.collections}
        for ref in self.references:
            feeders[ref.dst].add(ref.src)
            if ref.bidirectional:
                feeders[ref.src].add(ref.dst)

        # Kahn's walk with a priority queue: a collection is ready once something feeds it (an identity or
        # a placed neighbour) and everything it must wait for (directed inputs, 'after') is placed.
        waits = {a: directed_in[a] | after[a] for a in reachable}
        blockers = {a: len(w) for a, w in waits.items()}
        fed = {a: a in seeds for a in reachable}
        unblocks: dict[CollectionAddress, list[CollectionAddress]] = {a: [] for a in self.collections}
        for a, wait in waits.items():
            for b in wait:
                unblocks[b].append(a)
        heap = [(depth[a], a) for a in reachable if fed[a] and not blockers[a]]
        heapq.heapify(heap)
        placed: list[CollectionAddress] = []
        done: set[CollectionAddress] = set()
        inputs: dict[CollectionAddress, list[Input]] = {}
        while heap:
            _, node = heapq.heappop(heap)
            if node in done:
                continue
            inputs[node] = self._inputs(node, done)
            placed.append(node)
            done.add(node)
            for other in unblocks[node]:
                blockers[other] -= 1
            for other in {*unblocks[node], *(b for b in self._neighbours(node) if b in reachable)}:
                fed[other] = fed[other] or node in feeders[other]
                if other not in done and fed[other] and not blockers[other]:
                    heapq.heappush(heap, (depth[other], other))
        pending = reachable - done

        cycles = []
        if pending:
            waits = {a: (directed_in[a] | after[a]) & pending for a in pending}
            names = ", ".join(str(a) for a in on_cycle(waits) or sorted(pending))
            cycles.append(f"references and 'after' form a cycle among: {names}")
        # Collections no identity reaches keep a task, with no inputs: validate_request names them.
        for address in sorted(set(self.collections) - done):
            inputs[address] = []
            placed.append(address)
        return TraversalPlan(order=placed, inputs=inputs, after=after), cycles

    def erasure_cycle(self) -> list[CollectionAddress]:
        """Collections caught in an ``erase_after`` cycle (empty when the order is sound)."""
        return on_cycle({a: set(c.erase_after) for a, c in self.collections.items()})

    def _neighbours(self, node: CollectionAddress) -> set[CollectionAddress]:
        return {ref.dst if ref.src == node else ref.src for ref in self._touching[node]}

    def _inputs(self, node: CollectionAddress, done: set[CollectionAddress]) -> list[Input]:
        collection = self.collections[node]
        result = [Input(None, f.identity, f.path) for f in collection.fields if f.identity]
        for ref in self._touching[node]:
            if ref.dst == node and ref.src in done:
                result.append(Input(ref.src, ref.src_field, ref.dst_field))
            elif ref.bidirectional and ref.src == node and ref.dst in done:
                result.append(Input(ref.dst, ref.dst_field, ref.src_field))
        return result

    def _depths(self, seeds: set[CollectionAddress]) -> dict[CollectionAddress, int]:
        depth = {a: 1 for a in seeds}
        queue = deque(sorted(seeds))
        while queue:
            node = queue.popleft()
            for ref in self._touching[node]:
                nxt = None
                if ref.src == node:
                    nxt = ref.dst
                elif ref.bidirectional and ref.dst == node:
                    nxt = ref.src
                if nxt is not None and nxt not in depth:
                    depth[nxt] = depth[node] + 1
                    queue.append(nxt)
        return depth


def on_cycle(waits: dict[CollectionAddress, set[CollectionAddress]]) -> list[CollectionAddress]:
    """The nodes that wait, through any chain, on themselves (not those merely waiting on a cycle)."""
    result = []
    for start in waits:
        seen: set[CollectionAddress] = set()
        stack = list(waits[start])
        while stack:
            node = stack.pop()
            if node == start:
                result.append(start)
                break
            if node not in seen:
                seen.add(node)
                stack.extend(waits.get(node, ()))
    return sorted(result)


def build_graph(datasets: dict[str, Dataset], files: dict[str, str]) -> tuple[DatasetGraph, list[Problem]]:
    """Turn fideslang datasets into a graph; every bad reference or ordering is reported with its file."""
    problems: list[Problem] = []
    collections: dict[CollectionAddress, Collection] = {}
    for ds in datasets.values():
        for coll in ds.collections:
            address = CollectionAddress(ds.fides_key, coll.name)
            collections[address] = Collection(address, list(_flatten(coll.fields)))

    references: list[_Reference] = []
    for ds in datasets.values():
        file = files[ds.fides_key]
        dataset_after = set(ds.fides_meta.after or []) if ds.fides_meta else set()
        for name in sorted(dataset_after - set(datasets)):
            problems.append(Problem(file, f"{ds.fides_key}.fides_meta.after", f"unknown dataset '{name}'"))
        for coll in ds.collections:
            address = CollectionAddress(ds.fides_key, coll.name)
            collection = collections[address]
            for other in dataset_after & set(datasets):
                collection.after |= {a for a in collections if a.dataset == other}
            meta = coll.fides_meta
            for attr in ("after", "erase_after"):
                for key in (getattr(meta, attr) or []) if meta else []:
                    where = f"{ds.fides_key}.{coll.name}.fides_meta.{attr}"
                    target = _collection_key(key, collections)
                    if target is None:
                        problems.append(Problem(file, where, f"unknown collection '{key}'"))
                    elif target == address:
                        problems.append(Problem(file, where, "a collection cannot come after itself"))
                    else:
                        getattr(collection, attr).add(target)
            for fld, ref, where in _references(ds.fides_key, coll.name, coll.fields):
                target, problem = _resolve_reference(ref, collections)
                if problem:
                    problems.append(Problem(file, where, problem))
                    continue
                assert target is not None
                if target[0] == address:
                    problems.append(Problem(file, where, "a field cannot reference its own collection"))
                    continue
                direction = ref.direction.value if ref.direction else None
                if direction == "from":
                    references.append(_Reference(target[0], target[1], address, fld, False))
                else:
                    references.append(_Reference(address, fld, target[0], target[1], direction is None))
    return DatasetGraph(collections, references), problems


def _flatten(fields: list[DatasetField] | None, prefix: str = "") -> Iterator[FieldSpec]:
    for fld in fields or []:
        meta = fld.fides_meta
        path = f"{prefix}{fld.name}"
        is_object = bool(fld.fields) or bool(meta and meta.data_type == "object")
        yield FieldSpec(
            path=path,
            data_categories=tuple(fld.data_categories or ()),
            identity=meta.identity if meta else None,
            primary_key=bool(meta and meta.primary_key),
            data_type=meta.data_type if meta else None,
            length=meta.length if meta else None,
            read_only=bool(meta and meta.read_only),
            is_object=is_object,
        )
        yield from _flatten(fld.fields, prefix=f"{path}.")


def _references(dataset: str, collection: str, fields: list[DatasetField] | None,
                prefix: str = "") -> Iterator[tuple[str, FidesDatasetReference, str]]:
    for fld in fields or []:
        path = f"{prefix}{fld.name}"
        for ref_index, ref in enumerate((fld.fides_meta.references or []) if fld.fides_meta else []):
            where = f"{dataset}.{collection}.{path}.fides_meta.references[{ref_index}]"
            yield path, ref, where
        yield from _references(dataset, collection, fld.fields, prefix=f"{path}.")


def _collection_key(key: str, collections: dict[CollectionAddress, Collection]) -> CollectionAddress | None:
    dataset, _, name = key.partition(".")
    address = CollectionAddress(dataset, name)
    return address if address in collections else None


def _resolve_reference(ref: FidesDatasetReference, collections: dict[CollectionAddress, Collection]
                       ) -> tuple[tuple[CollectionAddress, str] | None, str | None]:
    collection, _, path = ref.field.partition(".")
    if not path:
        return None, f"field '{ref.field}' must be '<collection>.<field>'"
    if not any(a.dataset == ref.dataset for a in collections):
        return None, f"unknown dataset '{ref.dataset}'"
    address = CollectionAddress(ref.dataset, collection)
    if address not in collections:
        return None, f"unknown collection '{collection}' in dataset '{ref.dataset}'"
    if collections[address].field(path) is None:
        return None, f"unknown field '{path}' in collection '{address}'"
    return (address, path), None
