"""The embedded engine's collection: its SQLite store (the truth) and FAISS index (derived, mirror.py), in step
under one lock. Opened on first use, closed (`evict`) when the registry needs its files, reopened on the next call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from service.index.base import Hit, Item, Reembedding, VectorCollection, check_dim, check_query, merged, valid_id
from service.index.config import IndexConfig
from service.index.engines.faiss import snapshot
from service.index.engines.faiss.mirror import DB_FILE, SNAPSHOT_FILE, IndexMirror, Options, open_mirror
from service.index.engines.faiss.search import nearest_rows
from service.index.engines.faiss.store import Store
from service.index.engines.faiss.vector_index import VectorIndex
from service.index.errors import NotFound
from service.index.metadata import DEFAULT_LIMITS, Conditions, Limits

__all__ = ["DB_FILE", "FaissCollection", "Options"]

log = logging.getLogger(__name__)


class FaissCollection(VectorCollection):
    """Open with `FaissCollection(folder, defaults, options)` once the store exists (`initialise`); close to
    snapshot.

    The registry may `evict` an idle collection to free its three open files; the next call on the same object opens
    it again (snapshot + log, as at start), so callers may hold a FaissCollection as long as they like. After `close`
    with `dropped=True` every call is a NotFound.
    """

    reembeds = True

    def __init__(
        self,
        folder: Path,
        defaults: IndexConfig,
        options: Options,
        limits: Limits = DEFAULT_LIMITS,
        on_use: Callable[[FaissCollection], object] | None = None,
    ) -> None:
        self.name = folder.name
        self.folder = folder
        self.defaults = defaults
        self.options = options
        self.limits = limits
        self.on_use = on_use
        """Told after every call, the lock released (the registry's LRU of open collections)."""
        self.mirror: IndexMirror | None = None
        """The store and its index while open; a new one each time the collection opens."""
        self._dim_closed: int | None = None
        self._dropped = False
        self._lock = threading.RLock()
        self._snapshotting = threading.Lock()
        self._writing = threading.Lock()
        """Taken by this process' writes around their lock; a re-embed holds it while it builds the new index,
        so reads go on under `_lock` while writes wait here instead of inside SQLite's busy timeout."""
        self._reembedding = False
        self._searching: dict[str, int] = {}
        """set_search_params' values, applied again when an evicted collection reopens."""
        with self._lock:
            self._open()
        self._saved_often_enough()

    @property
    def store(self) -> Store:
        assert self.mirror is not None, "the collection is not open"
        return self.mirror.store

    @property
    def index(self) -> VectorIndex | None:
        return self.mirror.index if self.mirror is not None else None

    @property
    def dim(self) -> int | None:
        return self.mirror.dim if self.mirror is not None else self._dim_closed

    @property
    def is_open(self) -> bool:
        return self.mirror is not None

    @property
    def rebuilding(self) -> bool:
        """Whether a rebuild is being built aside right now."""
        return self.mirror is not None and self.mirror.aside is not None

    # -- lifecycle

    def _open(self) -> None:
        self.mirror = open_mirror(self.folder, self.defaults, self._searching, self.options, self._lock)
        self.config = self.mirror.config

    def close(self, save: bool = True, dropped: bool = False) -> None:
        """Snapshot unsaved changes (unless the collection is being dropped) and close the store. Waits for a
        snapshot being written, so a drop never removes the folder under it."""
        try:
            if save:
                self.snapshot()
        finally:  # a failed snapshot (disk full) still closes the files: the store holds every write
            with self._snapshotting, self._lock:
                self._dropped = self._dropped or dropped
                self._shut()

    def evict(self) -> bool:
        """Snapshot and close the files unless a call is using the collection right now (then False: try another).
        Never waits, so evicting from inside another collection's call cannot deadlock."""
        if self._reembedding or not self._lock.acquire(blocking=False):
            return False
        try:
            if self.mirror is not None:
                try:
                    self.snapshot()
                except OSError:
                    log.exception("snapshot of collection %r failed; the store is unaffected", self.name)
                self._shut()
            return True
        finally:
            self._lock.release()

    def _shut(self) -> None:
        if self.mirror is not None:
            self._dim_closed = self.mirror.dim
            self.mirror.aside = None  # a rebuild aside is thrown away
            self.mirror.store.close()
        self.mirror = None

    @contextmanager
    def current(self) -> Iterator[IndexMirror]:
        """Hold the lock with the store open (again, if it was evicted) and the index caught up with every commit,
        ours and other processes'."""
        try:
            with self._lock:
                if self._dropped:
                    raise NotFound.dropped(self.name)
                if self.mirror is None:
                    self._open()
                mirror = self.mirror
                assert mirror is not None
                version = mirror.store.data_version()
                if version != mirror.version:
                    mirror.version = version
                    mirror.catch_up()
                yield mirror
        finally:
            if self.on_use is not None:
                self.on_use(self)

    def snapshot(self) -> bool:
        """Save the index with the seq it covers, then drop the log up to that seq; False if nothing was saved.

        The index is serialised under the lock but written to disk outside it, so searches go on meanwhile; if the
        collection was closed or reopened meanwhile (evicted, dropped) the file is thrown away.
        """
        if not self._snapshotting.acquire(blocking=False):
            return False
        try:
            with self._lock:
                mirror = self.mirror
                saved = mirror.saved() if mirror is not None else None
                if mirror is None or saved is None:
                    return False
                seq, changes, arrays, header = saved
            tmp = snapshot.write_temp(self.folder / SNAPSHOT_FILE, arrays, header)
            del arrays
            with self._lock:
                if self.mirror is not mirror:
                    tmp.unlink()
                    return False
                return mirror.published(tmp, seq, changes)
        finally:
            self._snapshotting.release()

    def _saved_often_enough(self) -> None:
        """Snapshot when due. A failure (disk full) must not fail the write that was already committed: the
        store still has everything, and the next attempt or the next start catches up."""
        mirror = self.mirror
        if mirror is not None and mirror.dirty >= self.options.snapshot_every:
            try:
                self.snapshot()
            except OSError:
                log.exception("snapshot of collection %r failed; the store is unaffected", self.name)

    # -- writes

    def upsert(self, items: Sequence[Item], vectors: np.ndarray, model: str | None = None) -> int:
        """Insert or replace items by id (the last of repeated ids wins); durable once this returns. The model is
        checked and adopted inside the write transaction, so two servers of different models cannot both win."""
        items, vectors = self.checked(items, vectors)
        with self._writing, self.current() as mirror:
            with mirror.store.transaction():
                mirror.catch_up()
                dim = mirror.dim or vectors.shape[1]
                check_dim(vectors, dim)
                if mirror.dim is None:
                    mirror.store.set_meta("dim", dim)
                if model is not None and self.adopts(mirror.store.get_meta("model"), model):
                    mirror.store.set_meta("model", model)
                written = mirror.store.upsert(items, vectors)
            mirror.dim = dim
            mirror.apply(written, vectors)
        self._saved_often_enough()
        return len(items)

    def delete(self, item_id: str) -> bool:
        """Remove an item; False if there was none. Durable once this returns."""
        if not valid_id(item_id):
            return False
        with self._writing, self.current() as mirror:
            with mirror.store.transaction():
                mirror.catch_up()
                written = mirror.store.delete(item_id)
            if written is None:
                return False
            mirror.apply(written, np.empty((0, mirror.dim or 0), np.float32))
        self._saved_often_enough()
        return True

    def reembedding(self, job: Reembedding) -> int:
        """Every stored text embedded again, then one SQLite transaction switches to the new vectors (reembed.py)."""
        from service.index.engines.faiss.reembed import reembed

        count = reembed(self, job)
        self._saved_often_enough()
        return count

    @contextmanager
    def switching(self) -> Iterator[None]:
        """Held by a re-embedding's last step: this process' writes wait, and no snapshot, eviction or drop starts
        (a drop waits for `_snapshotting`); NotFound once dropped."""
        with self._writing, self._snapshotting:
            if self._dropped:
                raise NotFound.dropped(self.name)
            self._reembedding = True
            try:
                yield
            finally:
                self._reembedding = False

    def committed(self, writer: Store, index: VectorIndex | None, dim: int | None, seq: int) -> None:
        """Commit `writer`'s transaction and take `index` (of the committed store, up to `seq`) in the same step
        under the lock, so reads see the old vectors and index or the new ones, never a mix."""
        with self._lock:
            writer.db.execute("COMMIT")
            if self.mirror is not None:
                self.mirror.replace(index, dim, seq)
                self.mirror.version = self.mirror.store.data_version()
            writer.db.execute("BEGIN")  # the caller's transaction context closes an empty read

    # -- reads

    def info(self) -> dict[str, Any]:
        with self.current() as mirror:
            stats = mirror.index.stats() if mirror.index is not None else {}
            store = mirror.store
            info = {"name": self.name, "count": store.count(), "dim": mirror.dim, **self.config.public(), **stats}
            return {**info, "model": store.get_meta("model"), **(store.get_meta("attributes") or {})}

    def model(self) -> str | None:
        with self.current() as mirror:
            return mirror.store.get_meta("model")

    def attributes(self) -> dict[str, Any]:
        with self.current() as mirror:
            return mirror.store.get_meta("attributes") or {}

    def set_attributes(self, values: Mapping[str, Any]) -> None:
        with self._writing, self.current() as mirror, mirror.store.transaction():
            mirror.store.set_meta("attributes", merged(mirror.store.get_meta("attributes"), values))

    def count(self, conditions: Conditions) -> int:
        with self.current() as mirror:
            return mirror.store.count_matching(conditions)

    def scroll(self, after: str | None, limit: int, conditions: Conditions, with_vectors: bool = False) -> list[Item]:
        with self.current() as mirror:
            return mirror.store.scroll(after, limit, conditions, with_vectors)

    def nearest(self, vector: Any, k: int, conditions: Conditions) -> list[Hit]:
        """The k nearest items meeting `conditions`; k is assumed checked."""
        query = check_query(vector, self.dim)
        with self.current() as mirror:
            if mirror.index is None or mirror.index.size == 0:
                return []
            scores, rows = nearest_rows(mirror, query, k, conditions)
            found = mirror.store.items(rows.tolist())
        return [
            Hit(found[r].id, float(s), found[r].text, found[r].metadata)
            for s, r in zip(scores, rows.tolist(), strict=True)
            if r in found
        ]

    def set_search_params(self, **params: int) -> None:
        """Under the lock, for the index already built as well as the ones built later."""
        with self._lock:
            super().set_search_params(**params)
            self._searching = {**self._searching, **params}
            if self.mirror is not None:
                self.mirror.config = self.config
                if self.mirror.index is not None:
                    self.mirror.index.config = self.config

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """(ids, unit vectors) of every item in insertion order, from the store in one consistent view."""
        with self.current() as mirror, mirror.store.transaction(write=False):
            rows, vectors = mirror.store.vectors(dim=mirror.dim or 0)
            ids = mirror.store.ids()
        return [ids[r] for r in rows.tolist()], vectors

    def items(self, ids: Sequence[str], with_vectors: bool = False) -> list[Item | None]:
        """The stored items of these ids, None where there is none."""
        with self.current() as mirror, mirror.store.transaction(write=False):
            return [mirror.store.item(i, with_vectors) if valid_id(i) else None for i in ids]
