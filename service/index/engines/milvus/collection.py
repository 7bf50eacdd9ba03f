"""A handle on one Milvus collection: its catalog row (config, dimension, extras) and its items collection."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from service.index.base import Hit, Item, Reembedding, VectorCollection, check_dim, check_query, merged, valid_id
from service.index.config import IndexConfig
from service.index.engines.milvus.catalog import EXTRAS
from service.index.engines.milvus.connection import STRONG
from service.index.engines.milvus.expressions import pk_after, pk_filter, tags_filter, tags_text
from service.index.engines.milvus.locks import WRITE_CLOCK
from service.index.engines.milvus.moves import read_once_more_if_moved
from service.index.engines.milvus.store import (
    MAX_BATCH_BYTES,
    MAX_TOP_K,
    create_items,
    fields,
    items_collection,
    search_params,
    to_item,
    to_row,
)
from service.index.errors import NotFound
from service.index.metadata import ANY, Conditions, matches

if TYPE_CHECKING:
    from service.index.engines.milvus.registry import MilvusCollections


def _chunks(values: list, size: int) -> Iterator[list]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


class MilvusCollection(VectorCollection):
    """A handle on one collection: its name, config and (once written) dimension, read from the catalog."""

    max_k = MAX_TOP_K
    reembeds = True

    def __init__(self, owner: MilvusCollections, name: str, config: IndexConfig, dim: int | None) -> None:
        self.owner = owner
        self.connection = owner.connection
        self.client = owner.client
        self.timeout = owner.connection.timeout
        self.limits = owner.limits
        self.name = name
        self.config = config
        self.dim = dim
        self.target = items_collection(name)

    def items_target(self, check: bool = True) -> str | None:
        """The items' Milvus collection, None while nothing was ever written; NotFound once dropped. Unusable when
        its layout is not one this version can filter (`check`; migrating reads it unchecked)."""
        moved = self.owner.moved.get(self.name)
        if moved is not None and moved[0] != self.target:  # re-embedded through this process since this handle
            self.target, self.dim = moved
        if self.dim is None:
            with self.owner.errors(self.name):
                row = self.owner.catalog.row(self.name)
            if row is None:
                raise NotFound.dropped(self.name)
            self.dim = int(row["dim"]) or None
        if self.dim is None:
            return None
        return self.owner.ready(self.name, self.target) if check else self.connection.loaded(self.target)

    def _ensure_items(self, dim: int) -> str:
        """The first write creates the items' collection with its dimension; a racing replica's wins (in this
        process first writes take turns)."""
        if self.items_target() is not None:
            return self.target
        with self.owner.creating:
            if not self.client.has_collection(self.target, timeout=self.timeout):
                create_items(self.connection, self.target, dim, self.config)
        described = self.client.describe_collection(self.target, timeout=self.timeout)["fields"]
        self.dim = int(next(f for f in described if f["name"] == "vector")["params"]["dim"])
        self.rewrite(self.dim)
        return self.owner.ready(self.name, self.target)

    def catalog_row(self, level: str | None = None) -> dict[str, Any]:
        row = self.owner.catalog.row(self.name, level)
        if row is None:
            raise NotFound.dropped(self.name)
        return row

    def extras(self, level: str | None = None) -> dict[str, Any]:
        """The model fingerprint and attributes in the catalog row; NotFound once the collection was dropped."""
        config = self.catalog_row(level)["config"]
        return {key: config[key] for key in EXTRAS if key in config}

    def rewrite(self, dim: int | None = None, **extras: Any) -> None:
        """The catalog row with these extras changed, and its dimension unless as stored (another replica may have
        set it). The index settings are written back as stored, never this handle's `set_search_params`."""
        row = self.catalog_row()
        self.owner.catalog.write(self.name, row["config"], int(row["dim"]) if dim is None else dim, extras)

    def model(self) -> str | None:
        """The model that embedded the texts. A Bounded read of the catalog may predate another replica's first
        text write, which pins it: an unpinned answer is read again Strong, since the pin is what keeps a second
        model's vectors out of the collection (and it is rare: only until the first text is stored)."""
        with self.owner.errors(self.name):
            return self.extras().get("model") or self.extras(STRONG).get("model")

    def attributes(self) -> dict[str, Any]:
        with self.owner.errors(self.name):
            return self.extras().get("attributes") or {}

    def set_attributes(self, values: Mapping[str, Any]) -> None:
        with self.owner.errors(self.name):
            self.rewrite(attributes=merged(self.extras().get("attributes"), values))

    # -- writes

    def upsert(self, items: Sequence[Item], vectors: np.ndarray, model: str | None = None) -> int:
        """Replace by id. A batch over MAX_BATCH_BYTES goes in several calls; a failed call may leave part of it
        written, and sending the same batch again is safe. The model is checked and adopted before the items are
        written (Milvus has no transaction to do it in: two replicas of different models adopting at the same
        moment is the one race left, and the catalog keeps the later)."""
        checked, vectors = self.checked(items, vectors)
        by_id = {item.id: to_row(item, f"items[{i}]", self.dim) for i, item in enumerate(items)}  # the last id wins
        with self.owner.writing(self.name), self.owner.errors(self.name):
            target = self._ensure_items(vectors.shape[1])
            check_dim(vectors, self.dim or 0)
            if model is not None and self.adopts(self.extras().get("model"), model):
                self.rewrite(model=model)
            batch: list[dict[str, Any]] = []
            size, seq = 0, WRITE_CLOCK.take(len(checked))
            for i, (item, vector) in enumerate(zip(checked, vectors, strict=True)):
                row = {**by_id[item.id], "seq": seq + i, "vector": vector}
                if self.connection.lite:
                    row["tags_text"] = tags_text(row["tags"])
                batch.append(row)
                size += row.pop("bytes")
                if size >= MAX_BATCH_BYTES:
                    self._send(target, batch)
                    batch, size = [], 0
            if batch:
                self._send(target, batch)
        return len(checked)

    def _send(self, target: str, rows: list[dict[str, Any]]) -> None:
        self.client.upsert(target, rows, timeout=self.timeout)
        self.connection.wrote(target)

    def delete(self, item_id: str) -> bool:
        if not valid_id(item_id):
            return False
        with self.owner.writing(self.name), self.owner.errors(self.name):
            target = self.items_target()
            if target is None:
                return False
            expr = pk_filter([item_id])
            if not self.connection.query(target, expr, ["pk"]):
                return False
            self.client.delete(target, filter=expr, timeout=self.timeout)
            self.connection.wrote(target, delete=True)
        return True

    # -- reads

    @read_once_more_if_moved
    def info(self) -> dict[str, Any]:
        with self.owner.errors(self.name):
            target = self.items_target()
            count = self._count(target, {}) if target else 0
            extras = self.extras()
        info = {"name": self.name, "count": count, "dim": self.dim, **self.config.public()}
        return {**info, "model": extras.get("model"), **(extras.get("attributes") or {})}

    @read_once_more_if_moved
    def count(self, conditions: Conditions) -> int:
        """Counted by the tags alone: a 64-bit hash collision could add one, which a count can bear."""
        with self.owner.errors(self.name):
            target = self.items_target()
            return self._count(target, conditions) if target is not None else 0

    @read_once_more_if_moved
    def scroll(self, after: str | None, limit: int, conditions: Conditions, with_vectors: bool = False) -> list[Item]:
        """pk is the hex of the id's UTF-8, so pk order is the embedded engine's id order. Milvus answers a query
        with a limit in pk order; the page is sorted again all the same, and checked against the metadata."""
        terms = [pk_after(after)] if after is not None else []
        with self.owner.errors(self.name):
            target = self.items_target()
            if target is None:
                return []
            terms += [self._filter(conditions)] if conditions else []
            self.connection.barrier(target)
            rows = self.connection.query(
                target, " and ".join(terms), fields(with_vectors), limit=limit, iterator="True"
            )
        rows.sort(key=lambda r: r["pk"])
        return [to_item(r, with_vectors) for r in rows if matches(r["metadata"], conditions)]

    @read_once_more_if_moved
    def nearest(self, vector: Any, k: int, conditions: Conditions) -> list[Hit]:
        """The k nearest items meeting `conditions`; hits are checked against their metadata all the same.

        When every condition is "has key" (classify's label key, which most collections give every item), the k
        nearest unfiltered come first: if all of them match they are the answer, at the cost of a plain search.
        Otherwise the filter goes to Milvus, which evaluates it on its index (one search, k hits). Either way the
        answer is the one the filtered search gives.
        """
        with self.owner.errors(self.name):
            target = self.items_target()  # first: it may learn the dimension another replica's first write set
            query = check_query(vector, self.dim)
            if target is None:
                return []
            if conditions and all(v is ANY for v in conditions.values()):
                raw = self._search(target, query, k, {})
                hits = [hit for hit in raw if matches(hit.metadata, conditions)]
                if len(hits) >= k or len(raw) < k:
                    return hits[:k]
            return [hit for hit in self._search(target, query, k, conditions) if matches(hit.metadata, conditions)]

    def _filter(self, conditions: Conditions) -> str:
        return tags_filter(conditions, self.connection.lite) if conditions else ""

    def _search(self, target: str, query: np.ndarray, k: int, conditions: Conditions) -> list[Hit]:
        found = self.client.search(
            target,
            data=[query],
            anns_field="vector",
            limit=k,
            filter=self._filter(conditions),
            output_fields=["id", "text", "metadata"],
            search_params=search_params(self.config, k, bool(conditions)),
            consistency_level=self.connection.level(target),
            timeout=self.timeout,
        )[0]
        return [
            Hit(h["entity"]["id"], float(h["distance"]), h["entity"]["text"], h["entity"]["metadata"]) for h in found
        ]

    def _count(self, target: str, conditions: Conditions) -> int:
        return int(self.connection.query(target, self._filter(conditions), ["count(*)"])[0]["count(*)"])

    def reembedding(self, job: Reembedding) -> int:
        """Into a new items collection, then one catalog write switches to it (reembed.py)."""
        from service.index.engines.milvus.reembed import reembed

        return reembed(self, job)

    @read_once_more_if_moved
    def vectors(self) -> tuple[list[str], np.ndarray]:
        """Every item read back in pages (query_iterator), in the order of their last write."""
        ids: list[str] = []
        seqs: list[int] = []
        pages: list[np.ndarray] = []
        with self.owner.errors(self.name):
            target = self.items_target()
            if target is not None:
                for page in self.connection.pages(target, ["id", "seq", "vector"]):
                    ids += [r["id"] for r in page]
                    seqs += [r["seq"] for r in page]
                    pages.append(np.asarray([r["vector"] for r in page], dtype=np.float32))
        order = sorted(range(len(ids)), key=lambda i: (seqs[i], ids[i]))
        vectors = np.concatenate(pages) if pages else np.empty((0, self.dim or 0), np.float32)
        return [ids[i] for i in order], vectors[order]

    @read_once_more_if_moved
    def items(self, ids: Sequence[str], with_vectors: bool = False) -> list[Item | None]:
        wanted = [i for i in dict.fromkeys(ids) if valid_id(i)]
        found: dict[str, Item] = {}
        with self.owner.errors(self.name):
            target = self.items_target()
            if target is not None:
                for chunk in _chunks(wanted, 512):
                    rows = self.connection.query(target, pk_filter(chunk), fields(with_vectors))
                    found.update((r["id"], to_item(r, with_vectors)) for r in rows)
        return [found.get(i) for i in ids]
