"""Re-embedding a Milvus collection: every text embedded again into a new items collection, then one catalog write.

The new vectors go into `o2v_items_<name>_r<n>` while reads and writes go on over the current items collection.
Catch-up passes compare each item's write number (`seq`) with the one copied, so texts written or deleted meanwhile
are redone; the last pass and the switch (the catalog row naming the new items collection, its dimension and the
model) run holding this process' writes to the collection, so none of them falls between. Milvus has no transaction
across collections: a write through another replica in that last moment (a fraction of a second) can land in the
old items collection and be lost with it; run one re-embedding at a time, with other replicas' writes paused for
a guarantee. A kill or a failure before the catalog write leaves the collection as it was (the half-made items
collection is dropped then, or by the next re-embedding, create or drop of the name).

One re-embedding of a collection at a time, across replicas: it takes a lease in the collection's catalog row
(`reembedding`: a token and an expiry LEASE_S ahead, renewed as batches go), reads the row back after SETTLE_S
(Milvus has no compare-and-set: of two replicas that wrote their lease within that time the later one wins and
the other is refused), and gives it up with the switch or on failure. A replica that finds an unexpired lease is
refused (Conflict, 409); a process killed mid-way holds the name for at most LEASE_S.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from service.index.base import Reembedding, unit_vectors
from service.index.engines.milvus.connection import STRONG
from service.index.engines.milvus.expressions import GIVEN, pk_filter, tags_text
from service.index.engines.milvus.store import create_items, items_collection
from service.index.errors import Conflict

if TYPE_CHECKING:
    from service.index.engines.milvus.collection import MilvusCollection

log = logging.getLogger(__name__)

PASSES = 5
"""Catch-up passes before the last one, which runs with this process' writes held."""
LEASE = "reembedding"
"""The catalog config key of a re-embedding's lease: {"by": token, "until": seconds since the epoch}."""
LEASE_S = 30.0
SETTLE_S = 0.5
FIELDS = ["pk", "id", "text", "metadata", "tags", "seq"]


def reembed(collection: MilvusCollection, job: Reembedding) -> int:
    """Re-embed `collection` as `job` says and switch to the new vectors at once; how many items were embedded. See
    the module docstring."""
    with collection.owner.errors(collection.name):
        source = collection.items_target()
        if source is None:  # nothing stored: the model is all there is to adopt
            collection.rewrite(model=job.model)
            return 0
        dim = int(np.asarray(job.embed(["dimension probe"])).shape[1])
        if dim != collection.dim and _given(collection, source):
            raise Conflict.caller_vectors_width(collection.dim, job.model, dim)
    copier = Copier(collection, job.embed, job.batch_size, job.report, job.cancelled)
    count = switch(collection, source, dim, copier, model=job.model)
    job.report(count, count)
    return count


def _given(collection: MilvusCollection, source: str) -> int:
    """How many items hold vectors callers sent (Lite parses no negative literal here: asked only when needed)."""
    return collection.connection.query(source, f"array_contains(tags, {GIVEN})", ["count(*)"])[0]["count(*)"]


def relayout(collection: MilvusCollection) -> int:
    """Copy every item as it is (vectors included) into a new items collection of the layout this version makes,
    and switch to it as a re-embedding does; how many items were copied."""
    with collection.owner.errors(collection.name):
        source = collection.items_target(check=False)
    if source is None:
        return 0
    copier = Copier(collection, None, 1024, None, lambda: False)
    switch(collection, source, collection.dim or 0, copier)
    return len(copier.copied)


def switch(collection: MilvusCollection, source: str, dim: int, copier: Copier, **extras: Any) -> int:
    """Copy `source` into a new items collection of `dim` numbers through `copier`, in catch-up passes, then
    name it in the catalog row (with `extras`) and drop `source`; the items the model embedded."""
    owner, name = collection.owner, collection.name
    with owner.errors(name):
        lease = Lease(collection)
        owner.drop_items(name, keep=source)  # left by a killed re-embedding
        target = f"{items_collection(name)}_r{time.time_ns()}"
        create_items(owner.connection, target, dim, collection.config)
    copier.start(source, target, lease)
    try:
        with owner.errors(name):
            for _ in range(PASSES):
                if copier.catch_up() <= copier.batch_size:
                    break
        with owner.writing(name, exclusive=True), owner.errors(name):
            copier.catch_up()
            lease.renew()
            collection.rewrite(dim, items=target, reembedding=None, **extras)
            owner.moved[name] = (target, dim)
            collection.target, collection.dim = target, dim
    except BaseException:
        try:
            owner.drop_target(target)
        except Exception:  # the next re-embedding, create or drop of the name removes it
            log.warning("could not drop %s after a failed re-embedding", target, exc_info=True)
        lease.release()
        raise
    with owner.dropping():  # calls on the old items collection in this process end first
        owner.drop_target(source)
    return copier.embedded


class Lease:
    """This process' hold on re-embedding one collection, kept in its catalog row (see the module docstring)."""

    def __init__(self, collection: MilvusCollection) -> None:
        self.collection = collection
        self.token = uuid.uuid4().hex
        self._check(self.collection.catalog_row())
        self._write()
        time.sleep(SETTLE_S)
        self._check(self.collection.owner.catalog.row(collection.name, STRONG))

    def _check(self, row: dict[str, Any] | None) -> None:
        held = (row or {}).get("config", {}).get(LEASE) or {}
        if held.get("by") not in (None, self.token) and float(held.get("until", 0)) > time.time():
            name = self.collection.name
            raise Conflict(f"collection {name!r} is being re-embedded already (by another process); try later", "name")

    def _write(self) -> None:
        self.renewed = time.monotonic()
        self.collection.rewrite(reembedding={"by": self.token, "until": time.time() + LEASE_S})

    def renew(self) -> None:
        """Every LEASE_S / 3 as batches go: refused if another process took it meanwhile."""
        if time.monotonic() - self.renewed > LEASE_S / 3:
            self._check(self.collection.catalog_row())
            self._write()

    def release(self) -> None:
        try:
            row = self.collection.catalog_row()
            if (row["config"].get(LEASE) or {}).get("by") == self.token:
                self.collection.rewrite(reembedding=None)
        except Exception:  # it expires on its own
            log.warning("could not release the re-embedding lease of %s", self.collection.name, exc_info=True)


class Copier:
    """Copies items from `source` to `target` with new vectors (`embed`'s; with no `embed`, the stored ones),
    remembering the write number of each one copied."""

    def __init__(
        self,
        collection: MilvusCollection,
        embed: Callable[[list[str]], np.ndarray] | None,
        batch_size: int,
        progress: Callable[[int, int], None] | None,
        cancelled: Callable[[], bool],
    ) -> None:
        self.collection, self.connection = collection, collection.connection
        self.embed, self.batch_size, self.progress, self.cancelled = embed, batch_size, progress, cancelled
        self.copied: dict[str, tuple[int, bool]] = {}
        """id → (seq of the version copied, whether its vector was a caller's)"""

    def start(self, source: str, target: str, lease: Lease) -> None:
        self.source, self.target, self.lease = source, target, lease

    @property
    def embedded(self) -> int:
        """Items in the new collection whose vectors the model made."""
        return sum(not given for _, given in self.copied.values())

    def catch_up(self) -> int:
        """Copy what is new or changed since the last pass, delete what is gone; how many items that was."""
        now = dict(self._seqs())
        todo = [i for i, seq in now.items() if self.copied.get(i, (None,))[0] != seq]
        gone = [i for i in self.copied if i not in now]
        for start in range(0, len(gone), 512):
            chunk = gone[start : start + 512]
            self.connection.client.delete(self.target, filter=pk_filter(chunk), timeout=self.connection.timeout)
            self.connection.wrote(self.target, delete=True)
            for i in chunk:
                del self.copied[i]
        for start in range(0, len(todo), self.batch_size):
            if self.cancelled():
                raise Conflict.reembed_cancelled()
            self.lease.renew()
            self._copy(todo[start : start + self.batch_size])
            if self.progress is not None:
                self.progress(min(self.embedded, len(now)), len(now))
        return len(todo) + len(gone)

    def _seqs(self) -> Iterator[tuple[str, int]]:
        for page in self.connection.pages(self.source, ["id", "seq"]):
            yield from ((r["id"], r["seq"]) for r in page)

    def _copy(self, ids: list[str]) -> None:
        rows = self.connection.query(self.source, pk_filter(ids), FIELDS)
        kept = [r for r in rows if self.embed is None or GIVEN in r["tags"]]
        vectors = {}
        if kept:
            stored = self.connection.query(self.source, pk_filter([r["id"] for r in kept]), ["id", "vector"])
            vectors = {r["id"]: np.asarray(r["vector"], np.float32) for r in stored}
        texts = [r for r in rows if self.embed is not None and GIVEN not in r["tags"]]
        if texts and self.embed is not None:
            fresh = unit_vectors(np.asarray(self.embed([r["text"] for r in texts])), lambda i: f"texts[{i}]")
            vectors.update(zip([r["id"] for r in texts], fresh, strict=True))
        out = []
        for r in rows:
            row = {**r, "vector": vectors[r["id"]]}
            if self.connection.lite:
                row["tags_text"] = tags_text(r["tags"])
            out.append(row)
        if out:
            self.connection.client.upsert(self.target, out, timeout=self.connection.timeout)
            self.connection.wrote(self.target)
        self.copied.update((r["id"], (r["seq"], GIVEN in r["tags"])) for r in rows)
