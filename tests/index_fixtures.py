"""Random unit vectors, tiny items and small-parameter registries the index tests build for themselves, on either
engine: `registry(folder, store="milvus")` is a Milvus Lite file in the folder, `store="milvus-server"` the folder's
database on the test run's Milvus server (tests/milvus_server.py); both closed after the test (conftest)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.index.base import CollectionRegistry, Item
from service.index.config import IndexConfig
from service.index.engines.faiss.collection import Options
from service.index.engines.faiss.registry import FaissCollections
from tests import milvus_server

DIM = 16
KINDS = ("flat", "hnsw", "ivf")
STORES = ("faiss", "milvus", "milvus-server")
MILVUS = ("milvus", "milvus-server")
OPENED: list[CollectionRegistry] = []
"""Milvus registries of the running test; each keeps a Milvus Lite server or a connection until closed."""
SMALL = IndexConfig(m=16, ef_construction=64, ef_search=256, nlist=4, nprobe=4, min_train=120)
"""IVF trains at 120 vectors and probes all its lists, HNSW's beam covers every item: exact on these sizes."""


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def items(n: int, start: int = 0, **metadata: Any) -> list[Item]:
    return [Item(f"item-{i}", f"text {i}", {"i": i, "parity": i % 2, **metadata}) for i in range(start, start + n)]


def registry(folder: Path, config: IndexConfig = SMALL, store: str = "faiss", **options: Any) -> CollectionRegistry:
    """The embedded engine's registry of `folder` (with Options), or Milvus Lite's in folder/milvus.db."""
    if store in MILVUS:
        from service.index.engines.milvus.registry import MilvusCollections

        if store == "milvus":
            uri, db = str(folder / "milvus.db"), None
        else:
            uri, db = server_uri(), milvus_server.database(folder)
        OPENED.append(MilvusCollections(uri, db=db, defaults=config))
        return OPENED[-1]
    return FaissCollections(folder, config, Options(**options))


def server_uri() -> str:
    return os.environ[milvus_server.URI_ENV]


def store_settings(store: str, folder: Path) -> dict[str, Any]:
    """The settings that serve `store` for a data directory `folder` (the folder's database on the server)."""
    if store != "milvus-server":
        return {"vector_store": store}
    return {"vector_store": "milvus", "milvus_uri": server_uri(), "milvus_db": milvus_server.database(folder)}


def store_env(store: str, folder: Path) -> dict[str, str]:
    """`store_settings` as O2V_ variables, for processes the test starts."""
    return {f"O2V_{key.upper()}": str(value) for key, value in store_settings(store, folder).items()}


def use_store(monkeypatch: pytest.MonkeyPatch, store: str, folder: Path) -> None:
    """`store_settings` as O2V_ variables, for apps and processes the test starts."""
    for key, value in store_env(store, folder).items():
        monkeypatch.setenv(key, value)


def close_opened() -> None:
    while OPENED:
        OPENED.pop().close()
    if milvus_server.URI_ENV in os.environ:
        milvus_server.drop_databases()


def exact_ids(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int) -> list[str]:
    scores = vectors @ (query / np.linalg.norm(query))
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]
