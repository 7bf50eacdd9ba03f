"""Random unit vectors, tiny items and small-parameter registries the index tests build for themselves, on either
engine: `registry(folder, store="milvus")` is a Milvus Lite file in the folder, closed after the test (conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from service.index.base import CollectionRegistry, Item
from service.index.engines.faiss.collection import Options
from service.index.engines.faiss.registry import FaissCollections
from service.index.engines.faiss.vector_index import IndexConfig

DIM = 16
KINDS = ("flat", "hnsw", "ivf")
STORES = ("faiss", "milvus")
OPENED: list[CollectionRegistry] = []
"""Milvus registries of the running test; each keeps a Milvus Lite server until closed."""
SMALL = IndexConfig(m=16, ef_construction=64, ef_search=256, nlist=4, nprobe=4, min_train=120)
"""IVF trains at 120 vectors and probes all its lists, HNSW's beam covers every item: exact on these sizes."""


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def items(n: int, start: int = 0, **metadata: Any) -> list[Item]:
    return [Item(f"item-{i}", f"text {i}", {"i": i, "parity": i % 2, **metadata}) for i in range(start, start + n)]


def registry(folder: Path, config: IndexConfig = SMALL, store: str = "faiss", **options: Any) -> CollectionRegistry:
    """The embedded engine's registry of `folder` (with Options), or Milvus Lite's in folder/milvus.db."""
    if store == "milvus":
        from service.index.engines.milvus.engine import MilvusCollections

        OPENED.append(MilvusCollections(str(folder / "milvus.db"), defaults=config))
        return OPENED[-1]
    return FaissCollections(folder, config, Options(**options))


def close_opened() -> None:
    while OPENED:
        OPENED.pop().close()


def exact_ids(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int) -> list[str]:
    scores = vectors @ (query / np.linalg.norm(query))
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]
