"""Re-embedding an embedded collection: every stored text embedded again by the served model, and one SQLite
transaction switches to the new vectors; vectors callers sent stay as they are.

The long part (embedding) reads a snapshot of the texts and holds no lock. Texts written meanwhile are caught up
in passes, the last one inside the write transaction on a connection of its own, where the new index is also
built; reads go on over the old index and store until the commit, and the collection's lock is taken only for
the commit and the swap. A kill before the commit leaves the collection as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from service.index.base import Reembedding, unit_rows
from service.index.engines.faiss.mirror import DB_FILE
from service.index.engines.faiss.store import Store
from service.index.engines.faiss.vector_index import build
from service.index.errors import Conflict

if TYPE_CHECKING:
    from service.index.engines.faiss.collection import FaissCollection

PASSES = 5
"""Catch-up passes over texts written while a re-embedding runs; what is still new after them is embedded inside
the final write transaction."""

Embed = Callable[[list[str]], np.ndarray]


def stale(texts: Iterable[tuple[str, str]], ready: Mapping[str, tuple[str, Any]]) -> list[tuple[str, str]]:
    """The (id, text) pairs not yet embedded as they now read."""
    return [(i, t) for i, t in texts if i not in ready or ready[i][0] != t]


def reembed(collection: FaissCollection, job: Reembedding) -> int:
    """Re-embed `collection` as `job` says; how many items were embedded. See the module docstring."""
    texts, given = _texts(collection)
    if given and collection.dim is not None:
        probe = np.asarray(job.embed(["dimension probe"]))
        if probe.shape[1] != collection.dim:
            raise Conflict.caller_vectors_width(collection.dim, job.model, probe.shape[1], given)
    vectors: dict[str, tuple[str, np.ndarray]] = {}
    total = len(texts)
    for _ in range(PASSES):
        todo = stale(texts.items(), vectors)
        if len(todo) <= job.batch_size:
            break
        for start in range(0, len(todo), job.batch_size):
            if job.cancelled():
                raise Conflict.reembed_cancelled()
            chunk = todo[start : start + job.batch_size]
            for (item_id, text), vector in zip(chunk, np.asarray(job.embed([t for _, t in chunk])), strict=True):
                vectors[item_id] = (text, vector)
            job.report(min(len(vectors), total), total)
        texts, _ = _texts(collection)
        total = len(texts)
    with collection.switching():
        count = _switch(collection, job.embed, job.model, vectors)
    job.report(count, count)
    return count


def _texts(collection: FaissCollection) -> tuple[dict[str, str], int]:
    """{id: text} of the items whose vectors the collection's model made, and how many callers sent."""
    with collection.current() as mirror:
        rows = mirror.store.texts()
    return {i: t for i, t, given in rows if not given}, sum(given for _, _, given in rows)


def _switch(collection: FaissCollection, embed: Embed, model: str, ready: dict[str, tuple[str, Any]]) -> int:
    """The last catch-up, the writes, the new index and the swap; returns the items re-embedded."""
    writer = Store(collection.folder / DB_FILE, collection.options.busy_timeout_s)
    try:
        with writer.transaction():
            items = writer.embedded_items()
            late = stale(((item.id, item.text) for item in items), ready)
            if late:
                fresh = np.asarray(embed([t for _, t in late]))
                ready = {**ready, **{i: (t, v) for (i, t), v in zip(late, fresh, strict=True)}}
            vectors = unit_rows(np.asarray([ready[item.id][1] for item in items], dtype=np.float32))
            dim = vectors.shape[1] if items else collection.dim
            writer.upsert(items, vectors.reshape(len(items), dim or 0))
            writer.set_meta("model", model)
            if dim is not None:
                writer.set_meta("dim", dim)
            seq = writer.last_seq()
            live_rows, live = writer.vectors(dim=dim or 0)
            index = build(collection.config, dim or 0, live_rows, live) if dim is not None else None
            collection.committed(writer, index, dim, seq)
    finally:
        writer.close()
    return len(items)
