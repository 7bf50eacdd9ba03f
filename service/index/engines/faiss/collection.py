"""The embedded engine's collection: its SQLite store (the truth) and FAISS index (derived), in step under one lock.

Writes commit to SQLite first and only then touch the index, so an acknowledged write survives a crash even when
the index does not: on open the last snapshot is loaded and the change log after its seq is replayed. Before each
read the collection also replays changes other processes (other server workers) committed meanwhile.

A due rebuild (HNSW tombstones past their share, IVF training) of a large index is built aside on a thread of its
own from the store, while reads and writes go on over the current index; writes applied meanwhile are replayed
onto the new index when it is swapped in, under the lock.
"""

from __future__ import annotations

import logging
import math
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.index.base import (
    Hit,
    Item,
    VectorCollection,
    check_dim,
    check_items,
    check_query,
    merged,
    refuse_other_model,
    valid_id,
)
from service.index.engines.faiss import snapshot
from service.index.engines.faiss.store import ADD, Store, Written
from service.index.engines.faiss.vector_index import (
    CLASSES,
    IndexConfig,
    VectorIndex,
    build,
    build_streamed,
    exact_topk,
    from_state,
    unit_rows,
)
from service.index.errors import Conflict, NotFound, Unusable
from service.index.metadata import DEFAULT_LIMITS, Conditions, Limits, matches

log = logging.getLogger(__name__)

DB_FILE = "items.sqlite"
SNAPSHOT_FILE = "index.npz"
OVERFETCH = 2.0
"""A common filter value is first searched for among OVERFETCH × top_k / (its share) unfiltered neighbours."""


REEMBED_PASSES = 5
"""Catch-up passes over texts written while a re-embedding runs; what is still new after them is embedded inside
the final write transaction."""


def _raise_damage(name: str, exc: sqlite3.DatabaseError) -> None:
    """A SQLite error on open as what it means: a garbled or malformed file is a damaged collection (409, the
    others go on); a lock, a full disk or no descriptors (OperationalError) is left to raise as it is."""
    if not isinstance(exc, sqlite3.OperationalError):
        raise Unusable.damaged(name, f"{DB_FILE}: {exc}") from exc


def stale(texts: Iterable[tuple[str, str]], ready: Mapping[str, tuple[str, Any]]) -> list[tuple[str, str]]:
    """The (id, text) pairs not yet embedded as they now read."""
    return [(i, t) for i, t in texts if i not in ready or ready[i][0] != t]


@dataclass(frozen=True)
class Options:
    """Service-wide knobs a collection reads (from Settings)."""

    snapshot_every: int = 10_000
    filter_exact_max: int = 20_000
    """Filters matching up to this many items are searched exactly, over those items' stored vectors (cheap at this
    size, and exact); more matches search the index with the filter, unless they are half of it or more."""
    rebuild_inline_max: int = 20_000
    """Indexes of up to this many vectors are rebuilt inside the write that made it due (a fraction of a second,
    and the caller sees the result at once); larger ones are built aside."""
    busy_timeout_s: float = 60.0
    """How long a write waits for another connection's SQLite write lock (a re-embedding's commit, another worker)."""


@dataclass
class Aside:
    """A rebuild running on its own thread, and the writes applied to the current index since it started."""

    pending: list[tuple[Written, np.ndarray]] = field(default_factory=list)


class FaissCollection(VectorCollection):
    """Open with `FaissCollection(folder, defaults, options)` after `initialise`; close to snapshot.

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
        self.index: VectorIndex | None = None
        self._is_open = False
        self._dropped = False
        self._generation = 0
        self._lock = threading.RLock()
        self._snapshotting = threading.Lock()
        self._writing = threading.Lock()
        """Taken by this process' writes around their lock; a re-embed holds it while it builds the new index,
        so reads go on under `_lock` while writes wait here instead of inside SQLite's busy timeout."""
        self._reembedding = False
        self._searching: dict[str, int] = {}
        """set_search_params' values, applied again when an evicted collection reopens."""
        self._aside: Aside | None = None
        """The rebuild being built aside, if any; anything else that replaces the index clears it."""
        with self._lock:
            self._open()
        self._saved_often_enough()

    @staticmethod
    def initialise(folder: Path, config: IndexConfig) -> tuple[dict[str, Any], bool]:
        """Create the store with this config unless one exists; (the stored public config, created?). A creation
        that fails (a full disk) removes what it made, so no empty items.sqlite is left to look like a collection."""
        new, existed = not folder.exists(), (folder / DB_FILE).exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            store = Store(folder / DB_FILE)
            try:
                with store.transaction():
                    stored = store.get_meta("index")
                    if stored is None:
                        store.set_meta("index", config.public())
                        return config.public(), True
                    return stored, False
            finally:
                store.close()
        except BaseException:
            if new:
                shutil.rmtree(folder, ignore_errors=True)
            elif not existed:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    (folder / f"{DB_FILE}{suffix}").unlink(missing_ok=True)
            raise

    # -- lifecycle

    def _open(self) -> None:
        """Open the store and load the index (snapshot + log). A collection missing or stored with settings FAISS
        cannot run (NotFound, Unusable) leaves no file open and no index built."""
        try:
            store = Store(self.folder / DB_FILE, self.options.busy_timeout_s)
        except sqlite3.DatabaseError as exc:
            _raise_damage(self.name, exc)
            raise
        try:
            problem = store.damage()
            if problem is not None:
                raise Unusable.damaged(self.name, problem)
            stored = store.get_meta("index")
            if stored is None:
                raise NotFound.collection(self.name)
            self.config = self.defaults.from_public(stored, self.name).with_params(None, self._searching)
            self.store = store
            self.dim: int | None = store.get_meta("dim")
            self.covered = 0
            self._dirty = 0
            self._version = store.data_version()
            snapshot.remove_orphans(self.folder / SNAPSHOT_FILE)
            self._load()
        except sqlite3.DatabaseError as exc:
            store.close()
            self.index = None
            _raise_damage(self.name, exc)
            raise
        except BaseException:
            store.close()
            self.index = None
            raise
        self._is_open = True
        self._generation += 1

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
            if self._is_open:
                try:
                    self.snapshot()
                except OSError:
                    log.exception("snapshot of collection %r failed; the store is unaffected", self.name)
                self._shut()
            return True
        finally:
            self._lock.release()

    def _shut(self) -> None:
        if self._is_open:
            self.store.close()
        self._is_open = False
        self.index, self._aside = None, None

    @property
    def is_open(self) -> bool:
        return self._is_open

    @contextmanager
    def _current(self) -> Iterator[None]:
        """Hold the lock with the store open (again, if it was evicted) and the index caught up with every commit,
        ours and other processes'."""
        try:
            with self._lock:
                if self._dropped:
                    raise NotFound.dropped(self.name)
                if not self._is_open:
                    self._open()
                version = self.store.data_version()
                if version != self._version:
                    self._version = version
                    self._catch_up()
                yield
        finally:
            if self.on_use is not None:
                self.on_use(self)

    def _load(self) -> None:
        """Index from the snapshot plus the log after it, or rebuilt from the store when that is not possible."""
        self.index, self._aside = None, None
        if self.dim is None:
            self.covered = self.store.last_seq()
            return
        loaded = snapshot.read(self.folder / SNAPSHOT_FILE)
        if loaded and self._usable(loaded[0]):
            try:
                self.index = from_state(self.config, self.dim, loaded[1])
                self.covered = int(loaded[0]["seq"])
            except (ValueError, RuntimeError, KeyError):
                self.index = None
        if self.index is None:
            self._rebuild()
        else:
            self._catch_up()
            if self.index is not None and self.index.needs_rebuild():
                self._rebuild_due()

    def _usable(self, header: dict[str, Any]) -> bool:
        floor = self.store.get_meta("log_floor") or 0
        seq = header.get("seq", -1)
        fits = header.get("kind") == self.config.kind and header.get("dim") == self.dim
        return fits and floor <= seq <= self.store.last_seq()

    def _rebuild(self) -> None:
        """A fresh index from every live vector in the store, read in one consistent view."""
        with self.store.transaction(write=False):
            seq = self.store.last_seq()
            rows, vectors = self.store.vectors(dim=self.dim or 0)
        self.index, self._aside = build(self.config, self.dim or 0, rows, vectors), None
        self.covered = seq
        self._dirty = max(self._dirty, self.options.snapshot_every)

    @property
    def rebuilding(self) -> bool:
        """Whether a rebuild is being built aside right now."""
        return self._aside is not None

    def _rebuild_due(self) -> None:
        """Rebuild now if the index is small, else start building aside (unless that runs already)."""
        assert self.index is not None
        if self.index.size <= self.options.rebuild_inline_max:
            self._rebuild()
        elif self._aside is None:
            # The connection is opened here, under the lock, so a drop cannot remove the folder before it exists.
            store = Store(self.folder / DB_FILE, self.options.busy_timeout_s)
            self._aside = Aside()
            args = (self._aside, store, self.dim or 0)
            threading.Thread(target=self._build_aside, args=args, name=f"rebuild {self.name}", daemon=True).start()

    def _build_aside(self, aside: Aside, store: Store, dim: int) -> None:
        """Build from every live vector, read chunk by chunk in one view on a connection of its own, holding no
        lock; then, under the lock, replay the writes applied meanwhile that the view did not hold and swap. A
        close, reload or re-embedding meanwhile (`_aside` no longer this one) throws the build away."""
        try:
            try:
                with store.transaction(write=False):
                    seq = store.last_seq()
                    rows = store.rows()
                    index = build_streamed(self.config, dim, rows, lambda r: store.vectors(r.tolist(), dim))
            finally:
                store.close()
            del rows
            with self._lock:
                if self._aside is not aside:
                    return
                for written, added in aside.pending:
                    if written.seq > seq:  # a write commits whole: all its changes are after the view or none
                        index.remove(written.removed)
                        index.add(written.added, added)
                self.index, self._aside = index, None
                self.covered = max(self.covered, seq)
                self._dirty = max(self._dirty, self.options.snapshot_every)
        except Exception:
            log.exception("rebuilding the index of collection %r failed; the current one goes on answering", self.name)
        finally:
            with self._lock:
                if self._aside is aside:
                    self._aside = None

    def _catch_up(self) -> None:
        """Apply committed changes after `covered`; a removal whose add is not stored any more was never indexed."""
        with self.store.transaction(write=False):
            if self.covered < (self.store.get_meta("log_floor") or 0):
                self.dim = self.store.get_meta("dim")
                self._load()
                return
            stored_dim = self.store.get_meta("dim")
            if self.dim is not None and stored_dim != self.dim:  # re-embedded by a model of another width
                self.dim = stored_dim
                self._load()
                return
            changes = self.store.changes_since(self.covered)
            if not changes:
                return
            self.dim = self.dim or stored_dim
            added = [row for _, op, row in changes if op == ADD]
            rows, vectors = self.store.vectors(added, self.dim or 0)
        never_indexed = set(added) - set(rows.tolist())
        removed = np.array([row for _, op, row in changes if op != ADD and row not in never_indexed], dtype=np.int64)
        self._apply(Written(removed, rows, changes[-1][0]), vectors)

    def _apply(self, written: Written, vectors: np.ndarray) -> None:
        if self.index is None:
            self.index = CLASSES[self.config.kind](self.config, self.dim or 0)
        self.index.remove(written.removed)
        self.index.add(written.added, vectors)
        self.covered = written.seq
        self._dirty += len(written.removed) + len(written.added)
        if self._aside is not None:
            self._aside.pending.append((written, vectors))
        if self.index.needs_rebuild():
            self._rebuild_due()

    def snapshot(self) -> bool:
        """Save the index with the seq it covers, then drop the log up to that seq; False if nothing was saved.

        The index is serialised under the lock but written to disk outside it, so searches go on meanwhile; if the
        collection was closed or reopened meanwhile (evicted, dropped) the file is thrown away.
        """
        if not self._snapshotting.acquire(blocking=False):
            return False
        try:
            with self._lock:
                if not self._is_open or self.index is None or self._dirty == 0:
                    return False
                seq, dirty, arrays, generation = self.covered, self._dirty, self.index.state(), self._generation
            header = {"seq": seq, "kind": self.config.kind, "dim": self.dim, "format": 1}
            tmp = snapshot.write_temp(self.folder / SNAPSHOT_FILE, arrays, header)
            del arrays
            with self._lock:
                if not self._is_open or generation != self._generation:
                    tmp.unlink()
                    return False
                with self.store.transaction():
                    newer = (self.store.get_meta("snapshot_seq") or 0) >= seq  # another process saved a later one
                    if newer:
                        tmp.unlink()
                    else:
                        snapshot.publish(tmp, self.folder / SNAPSHOT_FILE)
                        self.store.set_meta("snapshot_seq", seq)
                        self.store.set_meta("log_floor", seq)
                        self.store.truncate_log(seq)
                    self._dirty -= dirty
            return not newer
        finally:
            self._snapshotting.release()

    def _saved_often_enough(self) -> None:
        """Snapshot when due. A failure (disk full) must not fail the write that was already committed: the
        store still has everything, and the next attempt or the next start catches up."""
        if self._dirty >= self.options.snapshot_every:
            try:
                self.snapshot()
            except OSError:
                log.exception("snapshot of collection %r failed; the store is unaffected", self.name)

    # -- writes

    def upsert(self, items: Sequence[Item], vectors: np.ndarray, model: str | None = None) -> int:
        """Insert or replace items by id (the last of repeated ids wins); durable once this returns. The model is
        checked and adopted inside the write transaction, so two servers of different models cannot both win."""
        items, vectors = check_items(items, vectors, self.limits)
        with self._writing, self._current():
            with self.store.transaction():
                self._catch_up()
                dim = self.dim or vectors.shape[1]
                check_dim(vectors, dim)
                if self.dim is None:
                    self.store.set_meta("dim", dim)
                if model is not None:
                    refuse_other_model(self.name, self.store.get_meta("model"), model)
                    self.store.set_meta("model", model)
                written = self.store.upsert(items, vectors)
            self.dim = dim
            self._apply(written, vectors)
        self._saved_often_enough()
        return len(items)

    def delete(self, item_id: str) -> bool:
        """Remove an item; False if there was none. Durable once this returns."""
        if not valid_id(item_id):
            return False
        with self._writing, self._current():
            with self.store.transaction():
                self._catch_up()
                written = self.store.delete(item_id)
            if written is None:
                return False
            self._apply(written, np.empty((0, self.dim or 0), np.float32))
        self._saved_often_enough()
        return True

    def reembed(
        self,
        embed: Callable[[list[str]], np.ndarray],
        model: str,
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any]:
        """Embed every stored text again with `embed` (the served model, fingerprint `model`) and switch to the new
        vectors in one SQLite transaction; vectors callers sent stay as they are.

        The long part (embedding) reads a snapshot of the texts and holds no lock. Texts written meanwhile are
        caught up in passes, the last one inside the write transaction on a connection of its own, where the new
        index is also built; reads go on over the old index and store until the commit, and this process' lock is
        taken only for the commit and the swap. A kill before the commit leaves the collection as it was.
        """
        started = time.perf_counter()
        with self._current():
            texts, given = self._texts()
        if given and self.dim is not None:
            probe = np.asarray(embed(["dimension probe"]))
            if probe.shape[1] != self.dim:
                raise Conflict.caller_vectors_width(self.dim, model, probe.shape[1], given)
        vectors: dict[str, tuple[str, np.ndarray]] = {}
        total = len(texts)
        for _ in range(REEMBED_PASSES):
            todo = stale(texts.items(), vectors)
            if len(todo) <= batch_size:
                break
            for start in range(0, len(todo), batch_size):
                if cancelled():
                    raise Conflict.reembed_cancelled()
                chunk = todo[start : start + batch_size]
                for (item_id, text), vector in zip(chunk, np.asarray(embed([t for _, t in chunk])), strict=True):
                    vectors[item_id] = (text, vector)
                if progress is not None:
                    progress(min(len(vectors), total), total)
            with self._current():
                texts, _ = self._texts()
            total = len(texts)
        with self._writing, self._snapshotting:  # a drop waits for _snapshotting, so none can start meanwhile
            if self._dropped:
                raise NotFound.dropped(self.name)
            self._reembedding = True
            try:
                count = self._switch(embed, model, vectors)
            finally:
                self._reembedding = False
        if progress is not None:
            progress(count, count)
        self._saved_often_enough()
        return {"collection": self.name, "reembedded": count, "model": model, "seconds": time.perf_counter() - started}

    def _texts(self) -> tuple[dict[str, str], int]:
        """{id: text} of the items whose vectors the collection's model made, and how many callers sent."""
        rows = self.store.texts()
        return {i: t for i, t, given in rows if not given}, sum(given for _, _, given in rows)

    def _switch(self, embed: Callable[[list[str]], np.ndarray], model: str, ready: dict[str, tuple[str, Any]]) -> int:
        """The last catch-up, the writes, the new index and the swap; returns the items re-embedded."""
        writer = Store(self.folder / DB_FILE, self.options.busy_timeout_s)
        try:
            with writer.transaction():
                items = writer.embedded_items()
                late = stale(((item.id, item.text) for item in items), ready)
                if late:
                    fresh = np.asarray(embed([t for _, t in late]))
                    ready = {**ready, **{i: (t, v) for (i, t), v in zip(late, fresh, strict=True)}}
                vectors = unit_rows(np.asarray([ready[item.id][1] for item in items], dtype=np.float32))
                dim = vectors.shape[1] if items else self.dim
                writer.upsert(items, vectors.reshape(len(items), dim or 0))
                writer.set_meta("model", model)
                if dim is not None:
                    writer.set_meta("dim", dim)
                seq = writer.last_seq()
                live_rows, live = writer.vectors(dim=dim or 0)
                index = build(self.config, dim or 0, live_rows, live) if dim is not None else None
                with self._lock:  # reads wait only for the commit and the swap
                    writer.db.execute("COMMIT")
                    if self._is_open:
                        self.index, self.dim, self.covered, self._aside = index, dim, seq, None
                        self._version = self.store.data_version()
                        self._dirty = max(self._dirty, self.options.snapshot_every)
                    writer.db.execute("BEGIN")  # the context manager's COMMIT closes an empty read
        finally:
            writer.close()
        return len(items)

    # -- reads

    def info(self) -> dict[str, Any]:
        with self._current():
            stats = self.index.stats() if self.index is not None else {}
            info = {"name": self.name, "count": self.store.count(), "dim": self.dim, **self.config.public(), **stats}
            return {**info, "model": self.store.get_meta("model"), **(self.store.get_meta("attributes") or {})}

    def model(self) -> str | None:
        with self._current():
            return self.store.get_meta("model")

    def attributes(self) -> dict[str, Any]:
        with self._current():
            return self.store.get_meta("attributes") or {}

    def set_attributes(self, values: Mapping[str, Any]) -> None:
        with self._writing, self._current(), self.store.transaction():
            self.store.set_meta("attributes", merged(self.store.get_meta("attributes"), values))

    def count(self, conditions: Conditions) -> int:
        with self._current():
            return self.store.count_matching(conditions)

    def scroll(self, after: str | None, limit: int, conditions: Conditions, with_vectors: bool = False) -> list[Item]:
        with self._current():
            return self.store.scroll(after, limit, conditions, with_vectors)

    def nearest(self, vector: Any, k: int, conditions: Conditions) -> list[Hit]:
        """The k nearest items meeting `conditions`; k is assumed checked."""
        query = check_query(vector, self.dim)
        with self._current():
            if self.index is None or self.index.size == 0:
                return []
            scores, rows = self._nearest_rows(query, k, conditions)
            found = self.store.items(rows.tolist())
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
            if self.index is not None:
                self.index.config = self.config

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """(ids, unit vectors) of every item in insertion order, from the store in one consistent view."""
        with self._current(), self.store.transaction(write=False):
            rows, vectors = self.store.vectors(dim=self.dim or 0)
            ids = self.store.ids()
        return [ids[r] for r in rows.tolist()], vectors

    def items(self, ids: Sequence[str], with_vectors: bool = False) -> list[Item | None]:
        """The stored items of these ids, None where there is none."""
        with self._current(), self.store.transaction(write=False):
            return [self.store.item(i, with_vectors) if valid_id(i) else None for i in ids]

    def _nearest_rows(self, query: np.ndarray, k: int, conditions: Conditions) -> tuple[np.ndarray, np.ndarray]:
        """Filters matching few items are searched exactly; common ones (many items, or at least half) by
        over-fetching from the index and checking, falling back to exact search when too few survive."""
        assert self.index is not None
        if not conditions:
            return self._index_search(query, k)
        count = self.store.count_matching(conditions)
        if count == 0:
            return np.empty(0, np.float32), np.empty(0, np.int64)
        # Over-fetch from the in-memory index when the filter matches many items, or most of them (classify's
        # "has a label" filter usually does): reading their vectors back from SQLite would cost far more.
        if count > self.options.filter_exact_max or 2 * count >= self.index.size:
            fetch = min(self.index.size, math.ceil(OVERFETCH * k * self.index.size / count) + k)
            scores, rows = self._index_search(query, fetch)
            found = self.store.items(rows.tolist())
            keep = [i for i, r in enumerate(rows.tolist()) if r in found and matches(found[r].metadata, conditions)]
            if len(keep) >= min(k, count):
                return scores[keep[:k]], rows[keep[:k]]
        rows, vectors = self.store.vectors(self.store.rows_matching(conditions).tolist(), self.dim or 0)
        return exact_topk(query, rows, vectors, k)

    def _index_search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.index is not None
        scores, rows = self.index.search(query[None, :], k, self._float_vectors)
        valid = rows[0] >= 0
        return scores[0][valid], rows[0][valid]

    def _float_vectors(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored vectors a compressed index re-ranks with, read from SQLite per query (no RAM of their own)."""
        return self.store.vectors(rows.tolist(), self.dim or 0)
