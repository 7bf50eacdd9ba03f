"""The embedded engine's collections under one data directory: create (idempotent), get, list and drop, each opened
once per process."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from service.index.base import CollectionRegistry, check_same
from service.index.config import IndexConfig
from service.index.engines.faiss.collection import DB_FILE, FaissCollection, Options
from service.index.engines.faiss.store import Store, copy_checked, migrate
from service.index.errors import NotFound
from service.index.metadata import DEFAULT_LIMITS, DEFAULTS, Limits
from service.index.names import NAME_RE, collection_dir
from service.settings import Settings

log = logging.getLogger(__name__)


class FaissCollections(CollectionRegistry):
    """Thread-safe registry; `close()` snapshots every open collection (call it at shutdown).

    Each open collection holds three files (the database, its WAL and shared memory). At most `max_open` stay open:
    beyond that the least recently used idle ones are evicted (snapshot, close) and reopen on their next use, so
    any number of collections fit in the process's file descriptors.
    """

    def __init__(
        self,
        data_dir: Path,
        defaults: IndexConfig | None = None,
        options: Options | None = None,
        limits: Limits = DEFAULT_LIMITS,
        max_open: int = DEFAULTS["max_open_collections"],
    ) -> None:
        self.data_dir = Path(data_dir)
        self.defaults = defaults or IndexConfig()
        self.options = options or Options()
        self.limits = limits
        self.max_open = max_open
        self._handles: dict[str, FaissCollection] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        """Names of the open collections, least recently used first."""
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, s: Settings) -> FaissCollections:
        options = Options.from_settings(s)
        return cls(s.data_dir, IndexConfig.defaults(s), options, Limits.from_settings(s), s.limits.max_open_collections)

    def create(
        self, name: str, index: str | None = None, params: dict[str, Any] | None = None
    ) -> tuple[FaissCollection, bool]:
        """(collection, created?). Asking again for the same settings is a no-op; for other settings, a Conflict."""
        params = params or {}
        folder = collection_dir(self.data_dir, name)
        created = False
        with self._lock:
            self.while_locked("create", name)
            try:
                collection = self._get(name)
            except NotFound:
                _, created = initialise(folder, self.defaults.with_params(index, params))
                collection = self._get(name)
        if not created:
            check_same(collection.config, index, params)
        return self._used(collection), created

    def get(self, name: str) -> FaissCollection:
        with self._lock:
            self.while_locked("get", name)
            collection = self._get(name)
        return self._used(collection)

    def names(self) -> list[str]:
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.iterdir() if NAME_RE.fullmatch(p.name) and self._exists(p))

    def drop(self, name: str) -> None:
        """Calls in flight on the collection finish first; later calls on it are NotFound."""
        folder = collection_dir(self.data_dir, name)
        with self._lock:
            self.while_locked("drop", name)
            collection = self._handles.pop(name, None)
            self._recent.pop(name, None)
            if collection is None and not self._exists(folder):
                raise NotFound.collection(name)
            if collection is not None:
                collection.close(save=False, dropped=True)
            shutil.rmtree(folder)

    def migrate(self, name: str) -> list[str]:
        """Add the store columns the collection lacks (store.migrate). An open collection has them all: only one
        that would not open (Unusable) changes."""
        folder = collection_dir(self.data_dir, name)
        with self._lock:
            if not self._exists(folder):
                raise NotFound.collection(name)
            return migrate(folder / DB_FILE)

    def export(self, name: str, path: Path) -> str:
        """SQLite's online backup API in one step (pages=-1): one consistent moment, writers going on meanwhile."""
        with self._lock:
            self._get(name)  # NotFound, Unusable
        source = sqlite3.connect(collection_dir(self.data_dir, name) / DB_FILE, timeout=60.0)
        copy = sqlite3.connect(path)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return "faiss"

    def restore_from(self, name: str, path: Path) -> None:
        """The checked copy is renamed into place: the collection exists from that rename on, complete."""
        folder = collection_dir(self.data_dir, name)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{DB_FILE}.partial"
        try:
            copy_checked(path, partial)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        os.replace(partial, folder / DB_FILE)

    def close(self) -> None:
        """Close every collection, even when one fails to snapshot (a full disk): its store already holds every
        acknowledged write, and the next start replays the log the snapshot would have covered."""
        with self._lock:
            for collection in self._handles.values():
                try:
                    collection.close()
                except Exception:
                    log.exception("closing collection %r failed; its store keeps every write", collection.name)
            self._handles.clear()
            self._recent.clear()

    def _get(self, name: str) -> FaissCollection:
        """The collection's one handle (call under the lock); opening it may raise NotFound or Unusable."""
        if name not in self._handles:
            folder = collection_dir(self.data_dir, name)
            if not self._exists(folder):
                raise NotFound.collection(name)
            self._handles[name] = FaissCollection(folder, self.defaults, self.options, self.limits, self._used)
        return self._handles[name]

    def _used(self, collection: FaissCollection) -> FaissCollection:
        """Mark the collection most recently used and evict the least recently used idle ones past `max_open`.
        Eviction snapshots, so it runs outside the registry lock; collections in use are skipped (the overshoot is
        at most the calls in flight, and the next call to finish trims it)."""
        with self._lock:
            if self._handles.get(collection.name) is not collection:
                return collection  # dropped meanwhile
            if collection.is_open:
                self._recent[collection.name] = None
                self._recent.move_to_end(collection.name)
            excess = len(self._recent) - self.max_open
            candidates = [self._handles[n] for n in self._recent if n != collection.name] if excess > 0 else []
        for victim in candidates:
            if excess <= 0:
                break
            if victim.evict():
                excess -= 1
                with self._lock:
                    if not victim.is_open:
                        self._recent.pop(victim.name, None)
        return collection

    @staticmethod
    def _exists(folder: Path) -> bool:
        return (folder / DB_FILE).is_file()


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
