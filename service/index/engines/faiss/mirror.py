"""The FAISS index of one open collection, kept in step with its SQLite store (the truth).

Writes commit to SQLite first and only then touch the index, so an acknowledged write survives a crash even when
the index does not: on open the last snapshot is loaded and the change log after its seq is replayed. Before each
read the collection also replays changes other processes (other server workers) committed meanwhile.

A due rebuild (HNSW tombstones past their share, IVF training) of a large index is built aside on a thread of its
own from the store, while reads and writes go on over the current index; writes applied meanwhile are replayed
onto the new index when it is swapped in, under the collection's lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from service.index.config import IndexConfig
from service.index.engines.faiss import snapshot
from service.index.engines.faiss.store import ADD, Store, Written
from service.index.engines.faiss.vector_index import CLASSES, VectorIndex, build, build_streamed, from_state
from service.index.errors import NotFound, Unusable

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger(__name__)

DB_FILE = "items.sqlite"
SNAPSHOT_FILE = "index.npz"


SNAPSHOT_EVERY = 10_000
"""Changes between FAISS snapshots (and one at close): the store is the truth, so a crash costs at most this many
changes replayed from SQLite at the next open, while a snapshot writes the whole index (1.5 GB for 1M flat 384-d
vectors): taken much more often, it would become the write path's main cost."""


@dataclass(frozen=True)
class Options:
    """Service-wide knobs a collection reads: constants with their reasons, and O2V_INDEX_BUSY_TIMEOUT_S (tests vary
    the others)."""

    snapshot_every: int = SNAPSHOT_EVERY
    filter_exact_max: int = 20_000
    """Filters matching up to this many items are searched exactly, over those items' stored vectors (cheap at this
    size, and exact); more matches search the index with the filter, unless they are half of it or more."""
    rebuild_inline_max: int = 20_000
    """Indexes of up to this many vectors are rebuilt inside the write that made it due (a fraction of a second,
    and the caller sees the result at once); larger ones are built aside."""
    busy_timeout_s: float = 60.0
    """How long a write waits for another connection's SQLite write lock (a re-embedding's commit, another worker)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Options:
        """The service's options: the constants as they are now (SNAPSHOT_EVERY read at the call), the busy timeout
        set."""
        return cls(snapshot_every=SNAPSHOT_EVERY, busy_timeout_s=settings.index.busy_timeout_s)


@dataclass
class Aside:
    """A rebuild running on its own thread, and the writes applied to the current index since it started."""

    pending: list[tuple[Written, np.ndarray]] = field(default_factory=list)


class IndexMirror:
    """The index over one open store: loaded from the snapshot and the log, caught up with every commit, rebuilt
    when due, and snapshotted. Call under the collection's `lock` (a rebuild aside takes it to swap)."""

    def __init__(
        self, folder: Path, config: IndexConfig, options: Options, store: Store, lock: threading.RLock
    ) -> None:
        self.folder, self.name, self.config, self.options = folder, folder.name, config, options
        self.store, self.lock = store, lock
        self.dim: int | None = store.get_meta("dim")
        self.covered = 0
        """The seq of the last change the index holds."""
        self.dirty = 0
        """Changes applied since the last snapshot."""
        self.version = store.data_version()
        self.index: VectorIndex | None = None
        self.aside: Aside | None = None
        """The rebuild being built aside, if any; anything else that replaces the index clears it."""
        snapshot.remove_orphans(folder / SNAPSHOT_FILE)
        self.load()

    def load(self) -> None:
        """Index from the snapshot plus the log after it, or rebuilt from the store when that is not possible."""
        self.index, self.aside = None, None
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
            self.rebuild()
        else:
            self.catch_up()
            if self.index is not None and self.index.needs_rebuild():
                self._rebuild_due()

    def _usable(self, header: dict[str, Any]) -> bool:
        floor = self.store.get_meta("log_floor") or 0
        seq = header.get("seq", -1)
        fits = header.get("kind") == self.config.kind and header.get("dim") == self.dim
        return fits and floor <= seq <= self.store.last_seq()

    def rebuild(self) -> None:
        """A fresh index from every live vector in the store, read in one consistent view."""
        with self.store.transaction(write=False):
            seq = self.store.last_seq()
            rows, vectors = self.store.vectors(dim=self.dim or 0)
        self.replace(build(self.config, self.dim or 0, rows, vectors), self.dim, seq)

    def replace(self, index: VectorIndex | None, dim: int | None, seq: int) -> None:
        """Take `index`, covering the store up to `seq`, in place of the current one (and of any being built)."""
        self.index, self.dim, self.covered, self.aside = index, dim, seq, None
        self.dirty = max(self.dirty, self.options.snapshot_every)

    def _rebuild_due(self) -> None:
        """Rebuild now if the index is small, else start building aside (unless that runs already)."""
        assert self.index is not None
        if self.index.size <= self.options.rebuild_inline_max:
            self.rebuild()
        elif self.aside is None:
            # The connection is opened here, under the lock, so a drop cannot remove the folder before it exists.
            store = Store(self.folder / DB_FILE, self.options.busy_timeout_s)
            self.aside = Aside()
            args = (self.aside, store, self.dim or 0)
            threading.Thread(target=self._build_aside, args=args, name=f"rebuild {self.name}", daemon=True).start()

    def _build_aside(self, aside: Aside, store: Store, dim: int) -> None:
        """Build from every live vector, read chunk by chunk in one view on a connection of its own, holding no
        lock; then, under the lock, replay the writes applied meanwhile that the view did not hold and swap. A
        close, reload or re-embedding meanwhile (`aside` no longer this one) throws the build away."""
        try:
            try:
                with store.transaction(write=False):
                    seq = store.last_seq()
                    rows = store.rows()
                    index = build_streamed(self.config, dim, rows, lambda r: store.vectors(r.tolist(), dim))
            finally:
                store.close()
            del rows
            with self.lock:
                if self.aside is not aside:
                    return
                for written, added in aside.pending:
                    if written.seq > seq:  # a write commits whole: all its changes are after the view or none
                        index.remove(written.removed)
                        index.add(written.added, added)
                self.replace(index, self.dim, max(self.covered, seq))
        except Exception:
            log.exception("rebuilding the index of collection %r failed; the current one goes on answering", self.name)
        finally:
            with self.lock:
                if self.aside is aside:
                    self.aside = None

    def catch_up(self) -> None:
        """Apply committed changes after `covered`; a removal whose add is not stored any more was never indexed."""
        with self.store.transaction(write=False):
            stored_dim = self.store.get_meta("dim")
            reembedded = self.dim is not None and stored_dim != self.dim  # by a model of another width
            if self.covered < (self.store.get_meta("log_floor") or 0) or reembedded:
                self.dim = stored_dim
                self.load()
                return
            changes = self.store.changes_since(self.covered)
            if not changes:
                return
            self.dim = self.dim or stored_dim
            added = [row for _, op, row in changes if op == ADD]
            rows, vectors = self.store.vectors(added, self.dim or 0)
        never_indexed = set(added) - set(rows.tolist())
        removed = np.array([row for _, op, row in changes if op != ADD and row not in never_indexed], dtype=np.int64)
        self.apply(Written(removed, rows, changes[-1][0]), vectors)

    def apply(self, written: Written, vectors: np.ndarray) -> None:
        """Mirror one committed write."""
        if self.index is None:
            self.index = CLASSES[self.config.kind](self.config, self.dim or 0)
        self.index.remove(written.removed)
        self.index.add(written.added, vectors)
        self.covered = written.seq
        self.dirty += len(written.removed) + len(written.added)
        if self.aside is not None:
            self.aside.pending.append((written, vectors))
        if self.index.needs_rebuild():
            self._rebuild_due()

    def saved(self) -> tuple[int, int, dict[str, np.ndarray], dict[str, Any]] | None:
        """(seq, changes, arrays, header) of a snapshot to write now, None when nothing changed since the last."""
        if self.index is None or self.dirty == 0:
            return None
        header = {"seq": self.covered, "kind": self.config.kind, "dim": self.dim, "format": 1}
        return self.covered, self.dirty, self.index.state(), header

    def published(self, tmp: Path, seq: int, changes: int) -> bool:
        """Make the written snapshot `tmp` the collection's and drop the log it covers, unless another process
        saved a later one; whether it was published."""
        with self.store.transaction():
            newer = (self.store.get_meta("snapshot_seq") or 0) >= seq
            if newer:
                tmp.unlink()
            else:
                snapshot.publish(tmp, self.folder / SNAPSHOT_FILE)
                self.store.set_meta("snapshot_seq", seq)
                self.store.set_meta("log_floor", seq)
                self.store.truncate_log(seq)
            self.dirty -= changes
        return not newer


def open_mirror(
    folder: Path, defaults: IndexConfig, searching: dict[str, int], options: Options, lock: threading.RLock
) -> IndexMirror:
    """Open the store of `folder` and load its index (snapshot + log), with the search-time parameters set on the
    handle. A collection missing, damaged or stored with settings FAISS cannot run (NotFound, Unusable) leaves no
    file open and no index built."""
    try:
        store = Store(folder / DB_FILE, options.busy_timeout_s)
    except sqlite3.DatabaseError as exc:
        _raise_damage(folder.name, exc)
        raise
    try:
        problem = store.damage()
        if problem is not None:
            raise Unusable.damaged(folder.name, problem)
        stored = store.get_meta("index")
        if stored is None:
            raise NotFound.collection(folder.name)
        config = defaults.from_public(stored, folder.name).with_params(None, searching)
        return IndexMirror(folder, config, options, store, lock)
    except sqlite3.DatabaseError as exc:
        store.close()
        _raise_damage(folder.name, exc)
        raise
    except BaseException:
        store.close()
        raise


def _raise_damage(name: str, exc: sqlite3.DatabaseError) -> None:
    """A SQLite error on open as what it means: a garbled or malformed file is a damaged collection (409, the
    others go on); a lock, a full disk or no descriptors (OperationalError) is left to raise as it is."""
    if not isinstance(exc, sqlite3.OperationalError):
        raise Unusable.damaged(name, f"{DB_FILE}: {exc}") from exc
