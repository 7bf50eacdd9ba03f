"""The embedded engine's collections under one data directory: create (idempotent), get, list and drop, each opened
once per process; and `open_collections`, the registry of whichever engine the settings name."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from service.index.base import CollectionRegistry, check_same
from service.index.collection import DB_FILE, Collection, Options
from service.index.errors import NotFound
from service.index.names import NAME_RE, collection_dir
from service.index.vector_index import IndexConfig
from service.settings import Settings, get_settings


def open_collections(settings: Settings | None = None) -> CollectionRegistry:
    """The registry of the engine `O2V_VECTOR_STORE` names: embedded FAISS + SQLite, or Milvus."""
    s = settings or get_settings()
    if s.vector_store == "milvus":
        from service.index.milvus import MilvusCollections  # pymilvus is imported only when it is used

        return MilvusCollections.from_settings(s)
    return Collections.from_settings(s)


class Collections(CollectionRegistry):
    """Thread-safe registry; `close()` snapshots every open collection (call it at shutdown)."""

    def __init__(self, data_dir: Path, defaults: IndexConfig | None = None, options: Options | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.defaults = defaults or IndexConfig()
        self.options = options or Options()
        self._open: dict[str, Collection] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Collections:
        s = settings or get_settings()
        return cls(s.data_dir, IndexConfig.defaults(s), Options(s.index_snapshot_every, s.index_filter_exact_max))

    def create(
        self, name: str, index: str | None = None, params: dict[str, Any] | None = None
    ) -> tuple[Collection, bool]:
        """(collection, created?). Asking again for the same settings is a no-op; for other settings, a Conflict."""
        params = params or {}
        folder = collection_dir(self.data_dir, name)
        with self._lock:
            try:
                collection = self._get(name)
            except NotFound:
                _, created = Collection.initialise(folder, self.defaults.with_params(index, params))
                collection = self._get(name)
                if created:
                    return collection, True
            check_same(collection.config, index, params)
            return collection, False

    def get(self, name: str) -> Collection:
        with self._lock:
            return self._get(name)

    def names(self) -> list[str]:
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.iterdir() if NAME_RE.fullmatch(p.name) and self._exists(p))

    def drop(self, name: str) -> None:
        folder = collection_dir(self.data_dir, name)
        with self._lock:
            collection = self._open.pop(name, None)
            if collection is None and not self._exists(folder):
                raise NotFound(f"no collection {name!r}", "name")
            if collection is not None:
                collection.close(save=False)
            shutil.rmtree(folder)

    def close(self) -> None:
        with self._lock:
            for collection in self._open.values():
                collection.close()
            self._open.clear()

    def _get(self, name: str) -> Collection:
        if name not in self._open:
            folder = collection_dir(self.data_dir, name)
            if not self._exists(folder):
                raise NotFound(f"no collection {name!r}", "name")
            self._open[name] = Collection(folder, self.defaults, self.options)
        return self._open[name]

    @staticmethod
    def _exists(folder: Path) -> bool:
        return (folder / DB_FILE).is_file()
