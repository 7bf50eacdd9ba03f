"""The Milvus engine's collections: those of one Milvus database (a cluster, Standalone, Zilliz Cloud or a Milvus
Lite `.db` file), created, found, listed and dropped through the catalog (catalog.py).

Selected by `O2V_VECTOR_STORE=milvus`; `O2V_MILVUS_URI` is `http(s)://host:19530` or a local `.db` path (Milvus Lite,
one process per file). The same interface, semantics and errors as the embedded engine (base.py), so the gateway
keeps no state of its own and any number of replicas can serve one Milvus. No caller's text ever enters a Milvus
expression: expressions.py builds them from hex digits and integers only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from service.index.base import CollectionRegistry, check_same
from service.index.config import IndexConfig
from service.index.engines.milvus.catalog import EXTRAS, Catalog
from service.index.engines.milvus.collection import MilvusCollection
from service.index.engines.milvus.connection import STRONG, Connection
from service.index.engines.milvus.locks import SharedLock
from service.index.engines.milvus.moves import Moved
from service.index.engines.milvus.store import (
    INDEXES,
    NOT_ON_LITE,
    items_collection,
    lacks_tags_index,
    lacks_text_tags,
    refuse_layout,
)
from service.index.errors import InvalidRequest, NotFound
from service.index.metadata import DEFAULT_LIMITS, Limits
from service.settings import Settings

log = logging.getLogger(__name__)


class MilvusCollections(CollectionRegistry):
    """The collections of one Milvus database. Holds nothing but the connection and what this process did: every
    `get` reads the catalog, so a collection made or dropped through another replica is seen at once."""

    remote = True  # a server (or Milvus Lite's in-process one): /readyz asks it

    def __init__(
        self,
        uri: str,
        token: str | None = None,
        db: str | None = None,
        defaults: IndexConfig | None = None,
        timeout: float = 10.0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.limits = limits
        self.defaults = defaults or IndexConfig()
        self.connection = Connection(uri, token, db, timeout)
        self.client = self.connection.client
        self.lite = self.connection.lite
        with self.connection.errors():
            self.catalog = Catalog(self.connection)
        self._lock = threading.Lock()
        self._dropping = SharedLock()
        self.creating = threading.Lock()
        """Taken around making an items collection: Milvus Lite fails two creations of one collection at once."""
        self._writes: dict[str, SharedLock] = {}
        """Per collection: writes in this process hold it shared, a re-embedding's switch and a backup exclusive."""
        self._ready: set[str] = set()
        """Items collections loaded and checked by this process."""
        self.moved: dict[str, tuple[str, int]] = {}
        """Collections re-embedded through this process: name → (items collection, dim), for handles made before."""

    @classmethod
    def from_settings(cls, settings: Settings) -> MilvusCollections:
        token = settings.milvus.token.get_secret_value() if settings.milvus.token else None
        uri = settings.milvus.uri or str(Path(settings.data_dir) / "milvus.db")
        defaults, limits = IndexConfig.defaults(settings), Limits.from_settings(settings)
        return cls(uri, token, settings.milvus.db, defaults, settings.milvus.timeout_s, limits)

    @contextmanager
    def errors(self, name: str | None = None) -> Iterator[None]:
        """Milvus' failures as the collection errors the API answers: a missing collection is NotFound (dropped
        meanwhile, perhaps through another replica), anything else StoreUnavailable (503, try again). With a
        collection's name, a drop in this process waits until the call is done."""
        missing = None if name is None else lambda exc: self._not_found(name, exc)
        with self._dropping.shared() if name is not None else nullcontext(), self.connection.errors(missing):
            yield

    @contextmanager
    def dropping(self) -> Iterator[None]:
        """Held while Milvus collections are dropped: calls on collections in this process finish first."""
        with self._dropping.exclusive(), self.errors():
            yield

    def _not_found(self, name: str, exc: Exception) -> None:
        """An items collection gone under a call: NotFound when the collection was dropped; when its catalog row
        is still there (Strong), another replica re-embedded it (it names a new items collection): try again."""
        try:
            row = self.catalog.row(name, STRONG)
        except Exception:
            row = None
        if row is None:
            raise NotFound.collection(name) from exc
        self._ready.clear()
        raise Moved(f"collection {name!r} changed through another replica meanwhile; try again") from exc

    def follow(self, collection: MilvusCollection) -> None:
        """Point `collection` at what its catalog row names now (read Strong): after Moved, the items collection
        another replica's re-embedding switched to. NotFound when the collection was dropped meanwhile."""
        with self.errors(collection.name):
            row = self.catalog.row(collection.name, STRONG)
        if row is None:
            raise NotFound.dropped(collection.name)
        current = self.handle(collection.name, row)
        collection.target, collection.dim, collection.config = current.target, current.dim, current.config
        if collection.name in self.moved and current.dim is not None:  # an earlier re-embedding through this process
            self.moved[collection.name] = (current.target, current.dim)

    @contextmanager
    def writing(self, name: str, exclusive: bool = False) -> Iterator[None]:
        """Writes to collection `name` in this process hold this shared; a re-embedding's last catch-up and
        switch, and a backup, hold it exclusive, so no write of this process falls between."""
        with self._lock:
            lock = self._writes.setdefault(name, SharedLock())
        with lock.exclusive() if exclusive else lock.shared():
            yield

    def ready(self, name: str, target: str) -> str:
        """The items collection `target` of collection `name`, loaded and its layout checked (once per process):
        Unusable when its filters cannot run, a warning when they run unindexed."""
        if target not in self._ready:
            self.connection.loaded(target)
            if lacks_text_tags(self.connection, target):
                raise refuse_layout(name)
            if lacks_tags_index(self.connection, target):
                log.warning("collection %r filters without an index on its tags: run o2v index migrate %s", name, name)
            self._ready.add(target)
        return target

    def drop_items(self, name: str, keep: str | None = None) -> None:
        """Drop every items collection of `name` but `keep`: the default one, and any a re-embedding made
        (`_r<n>`: no other collection's items name has `_r` where an escape would start)."""
        base = items_collection(name)
        for found in self.client.list_collections(timeout=self.connection.timeout):
            if found != keep and (found == base or found.startswith(base + "_r")):
                self.drop_target(found)

    def drop_target(self, target: str) -> None:
        self.connection.drop(target)
        self._ready.discard(target)

    def handle(self, name: str, row: dict[str, Any]) -> MilvusCollection:
        """A handle on collection `name` from its catalog row."""
        stored = row["config"] if isinstance(row["config"], dict) else {}
        config = {k: v for k, v in stored.items() if k not in EXTRAS} if isinstance(row["config"], dict) else None
        collection = MilvusCollection(self, name, self.defaults.from_public(config, name), int(row["dim"]) or None)
        collection.target = stored.get("items") or collection.target
        return collection

    # -- the registry

    def create(
        self, name: str, index: str | None = None, params: dict[str, Any] | None = None
    ) -> tuple[MilvusCollection, bool]:
        params = params or {}
        with self._lock, self.errors(name):
            self.while_locked("create", name)
            row = self.catalog.row(name)
            if row is not None:
                collection = self.handle(name, row)
                check_same(collection.config, index, params)
                return collection, False
            config = self.defaults.with_params(index, params)
            if self.lite and config.kind in NOT_ON_LITE:
                raise InvalidRequest(f"Milvus Lite has no {INDEXES[config.kind]} index: use a Milvus server", "index")
            self.drop_items(name)  # left by a broken drop or a killed re-embedding
            self.moved.pop(name, None)
            self.catalog.write(name, config.public(), 0)
            return MilvusCollection(self, name, config, None), True

    def get(self, name: str) -> MilvusCollection:
        with self.errors(name):
            row = self.catalog.row(name)
        if row is None:
            raise NotFound.collection(name)
        return self.handle(name, row)

    def names(self) -> list[str]:
        with self.errors():
            return self.catalog.names()

    def drop(self, name: str) -> None:
        """The catalog row goes first, so no replica finds the collection while its items are being dropped."""
        with self._lock, self.dropping():
            self.while_locked("drop", name)
            if self.catalog.row(name) is None:
                raise NotFound.collection(name)
            self.catalog.delete(name)
            self.drop_items(name)
            self.moved.pop(name, None)

    def migrate(self, name: str) -> list[str]:
        """Bring collection `name` to the layout this version makes; what was changed. A Lite items collection
        without `tags_text` is copied into a new one, vectors kept, as a re-embedding switches (reads and writes go
        on meanwhile); a server's tags get the INVERTED index the server can build."""
        collection = self.get(name)
        with self.errors(name):
            target = collection.items_target(check=False)
            text = target is not None and lacks_text_tags(self.connection, target)
            index = target is not None and not text and lacks_tags_index(self.connection, target)
            if index:
                params = self.client.prepare_index_params()
                params.add_index("tags", index_type="INVERTED")
                self.client.create_index(target, params, timeout=self.connection.timeout, sync=False)
        if text:
            from service.index.engines.milvus.reembed import relayout

            return [f"tags kept as text ({relayout(collection)} items copied)"]
        return ["tags indexed (INVERTED)"] if index else []

    def export(self, name: str, path: Path) -> str:
        from service.index.engines.milvus.backup import export

        export(self, name, path)
        return "milvus"

    def restore_from(self, name: str, path: Path) -> None:
        from service.index.engines.milvus.backup import restore

        restore(self, name, path)

    def check(self) -> None:
        """One cheap call (list the collections): StoreUnavailable when Milvus does not answer in time."""
        with self.errors():
            self.client.list_collections(timeout=self.connection.timeout)

    def close(self) -> None:
        self.connection.close()
