"""The collections under one data directory: create (idempotent), get, list and drop, each opened once per process."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from service.index.collection import DB_FILE, Collection, Options
from service.index.errors import Conflict, NotFound
from service.index.names import NAME_RE, collection_dir
from service.index.vector_index import PARAMS, IndexConfig
from service.settings import Settings, get_settings


class Collections:
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
            _same(collection.config, index, params)
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


def _same(config: IndexConfig, index: str | None, params: dict[str, Any]) -> None:
    """Raise Conflict naming the first setting asked for that differs from the existing collection's."""
    if index is not None and index != config.kind:
        raise Conflict(f"collection exists with index {config.kind!r}", "index")
    config.with_params(config.kind, params)
    for key, value in params.items():
        if key in PARAMS[config.kind] and getattr(config, key) != value:
            raise Conflict(f"collection exists with {key}={getattr(config, key)}", key)
