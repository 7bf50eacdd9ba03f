"""The FAISS index kinds a collection can use (flat, hnsw, ivf, hnsw_sq8, ivf_pq), keyed by store rows, unit vectors.

Inner product on L2-normalised vectors is cosine. FAISS's HNSW cannot remove vectors, so removed rows stay in
the graph as tombstones that every search excludes through an IDSelector, and the collection rebuilds the graph
once their share passes a threshold. IVF answers exactly (a flat index) until enough vectors exist to train it.

The compressed kinds keep codes, not floats, in RAM (hnsw_sq8: one byte a number; ivf_pq: pq_m bytes a vector) and
re-rank their best top_k + `rerank` candidates exactly from the float vectors the caller reads back (the collection
reads them from its SQLite store per query, so they cost disk and page cache, not index RAM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from service.index.config import IndexConfig, Kind, pq_parts

POINTS_PER_LIST = 39
"""FAISS k-means wants at least this many training points per centroid."""
TRAIN_PER_LIST = 256
"""A streamed build trains IVF on at most this many sampled vectors per list: FAISS's k-means samples down to
as many itself."""
PQ_CENTROIDS = 256
"""Centroids of each 8-bit product-quantizer part: its k-means needs at least this many training vectors."""


def exact_topk(query: np.ndarray, rows: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k (scores, rows) of `vectors` for one query, brute force; used for filters that match few items."""
    if len(rows) == 0:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    scores = vectors @ query
    top = np.argpartition(-scores, min(k, len(rows)) - 1)[:k] if len(rows) > k else np.arange(len(rows))
    order = top[np.lexsort((rows[top], -scores[top]))]
    return scores[order], rows[order]


VectorsOf = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(rows, float unit vectors) of those of the given rows that still exist: what a compressed index re-ranks with."""


def reranked(
    queries: np.ndarray, candidates: np.ndarray, k: int, vectors_of: VectorsOf
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's best k of its candidate rows by exact inner product with their float vectors, -1 padded."""
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    for i, (query, found) in enumerate(zip(queries, candidates, strict=True)):
        have, vectors = vectors_of(found[found >= 0])
        best_scores, best_rows = exact_topk(query, have, vectors, k)
        scores[i, : len(best_rows)], rows[i, : len(best_rows)] = best_scores, best_rows
    return scores, rows


class VectorIndex:
    """Flat exact search; the base the other kinds extend. Scores and rows come back best first, -1 padded."""

    kind: Kind = "flat"

    def __init__(self, config: IndexConfig, dim: int, index: faiss.Index | None = None) -> None:
        self.config = config
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap(faiss.IndexFlatIP(dim))

    @property
    def size(self) -> int:
        """Live vectors."""
        return int(self.index.ntotal)

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        if len(rows):
            self.index.add_with_ids(vectors, rows)

    def remove(self, rows: np.ndarray) -> None:
        if len(rows):
            self.index.remove_ids(rows)

    @property
    def rerank_extra(self) -> int:
        """Candidates beyond top_k a search re-ranks exactly (0: the index's own scores are exact)."""
        return 0

    def search(self, queries: np.ndarray, k: int, vectors_of: VectorsOf | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best k per query; a compressed index re-ranks its best k + `rerank_extra` with `vectors_of`, and
        without it answers from its codes alone (approximate scores)."""
        k = max(1, min(k, self.size))
        depth = min(k + self.rerank_extra, self.size)
        scores, rows = self.index.search(queries, depth, params=self._params(depth))
        if not self.rerank_extra or vectors_of is None:
            return scores[:, :k], rows[:, :k]
        return reranked(queries, rows, k, vectors_of)

    def _params(self, k: int) -> faiss.SearchParameters | None:
        return None

    def needs_rebuild(self) -> bool:
        return False

    def stats(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, np.ndarray]:
        """Arrays a snapshot stores; `from_state` turns them back into an index."""
        return {"faiss": faiss.serialize_index(self.index)}


class HnswIndex(VectorIndex):
    """HNSW graph plus tombstones for removed rows (the graph keeps them as stepping stones, results do not)."""

    kind: Kind = "hnsw"

    def __init__(self, config: IndexConfig, dim: int, index: faiss.Index | None = None, dead: Any = ()) -> None:
        if index is None:
            graph = self._graph(config, dim)
            graph.hnsw.efConstruction = config.ef_construction
            index = faiss.IndexIDMap(graph)
        super().__init__(config, dim, index)
        self.dead = {int(r) for r in dead}
        self._selector: Any = None

    @staticmethod
    def _graph(config: IndexConfig, dim: int) -> faiss.IndexHNSW:
        return faiss.IndexHNSWFlat(dim, config.m, faiss.METRIC_INNER_PRODUCT)

    @property
    def size(self) -> int:
        return int(self.index.ntotal) - len(self.dead)

    def remove(self, rows: np.ndarray) -> None:
        self.dead.update(int(r) for r in rows)
        self._selector = None

    def _params(self, k: int) -> faiss.SearchParameters:
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.config.ef_search, k)
        if self.dead:
            if self._selector is None:
                batch = faiss.IDSelectorBatch(np.fromiter(self.dead, np.int64, len(self.dead)))
                self._selector = (batch, faiss.IDSelectorNot(batch))
            params.sel = self._selector[1]
        return params

    def needs_rebuild(self) -> bool:
        return len(self.dead) > 0 and len(self.dead) >= self.config.rebuild_deleted_share * self.index.ntotal

    def stats(self) -> dict[str, Any]:
        return {"deleted": len(self.dead)}

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "dead": np.array(sorted(self.dead), dtype=np.int64)}


class HnswSq8Index(HnswIndex):
    """HNSW over one byte per number instead of four (a quarter of hnsw's vector memory), re-ranked exactly."""

    kind: Kind = "hnsw_sq8"

    @staticmethod
    def _graph(config: IndexConfig, dim: int) -> faiss.IndexHNSW:
        graph = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit_uniform, config.m, faiss.METRIC_INNER_PRODUCT)
        # A unit vector's numbers lie in [-1, 1]: that fixed range needs no training data, so the codes never go
        # stale as the collection changes (the range error, at most 1/255 a number, is what re-ranking repairs).
        graph.train(np.array([[-1.0] * dim, [1.0] * dim], dtype=np.float32))
        return graph

    @property
    def rerank_extra(self) -> int:
        return self.config.rerank


class IvfIndex(VectorIndex):
    """IVF-Flat once trained; before that the base class's flat index answers exactly."""

    kind: Kind = "ivf"

    @property
    def trained(self) -> bool:
        return isinstance(self.index, faiss.IndexIVF)

    @property
    def train_min(self) -> int:
        """Vectors needed before training."""
        return self.config.min_train

    def train(self, vectors: np.ndarray, seed: int = 0) -> None:
        """Replace the flat index by an empty trained IVF; the caller adds the vectors."""
        nlist = max(1, min(self.config.nlist, len(vectors) // POINTS_PER_LIST))
        ivf = self._empty(nlist)
        ivf.cp.seed = seed
        ivf.train(vectors)
        self.index = ivf

    def _empty(self, nlist: int) -> faiss.IndexIVF:
        return faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)

    def _params(self, k: int) -> faiss.SearchParameters | None:
        return faiss.SearchParametersIVF(nprobe=min(self.config.nprobe, self.index.nlist)) if self.trained else None

    def needs_rebuild(self) -> bool:
        return not self.trained and self.size >= self.train_min

    def stats(self) -> dict[str, Any]:
        return {"trained": self.trained, "lists": int(self.index.nlist) if self.trained else None}


class IvfPqIndex(IvfIndex):
    """IVF over product-quantized residuals (pq_m bytes a vector) once trained, re-ranked exactly; flat before."""

    kind: Kind = "ivf_pq"

    @property
    def train_min(self) -> int:
        return max(self.config.min_train, PQ_CENTROIDS)

    def _empty(self, nlist: int) -> faiss.IndexIVF:
        parts = pq_parts(self.dim, self.config.pq_m)
        return faiss.IndexIVFPQ(faiss.IndexFlatIP(self.dim), self.dim, nlist, parts, 8, faiss.METRIC_INNER_PRODUCT)

    @property
    def rerank_extra(self) -> int:
        return self.config.rerank if self.trained else 0

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "pq_parts": int(self.index.pq.M) if self.trained else None}


CLASSES: dict[str, type[VectorIndex]] = {
    "flat": VectorIndex,
    "hnsw": HnswIndex,
    "ivf": IvfIndex,
    "hnsw_sq8": HnswSq8Index,
    "ivf_pq": IvfPqIndex,
}


def build(config: IndexConfig, dim: int, rows: np.ndarray, vectors: np.ndarray) -> VectorIndex:
    """A fresh index over these rows (an IVF one trained on them when there are enough)."""
    index = CLASSES[config.kind](config, dim)
    if isinstance(index, IvfIndex) and len(rows) >= index.train_min:
        index.train(vectors)
    index.add(rows, vectors)
    return index


def build_streamed(
    config: IndexConfig, dim: int, rows: np.ndarray, vectors_of: VectorsOf, chunk: int = 65_536, seed: int = 0
) -> VectorIndex:
    """A fresh index over `rows`, their vectors read through `vectors_of` chunk by chunk (an IVF kind trained on
    a sample first), so a rebuild of 10M vectors never holds all their floats (15 GiB at 384-d) at once."""
    index = CLASSES[config.kind](config, dim)
    if isinstance(index, IvfIndex) and len(rows) >= index.train_min:
        size = min(len(rows), TRAIN_PER_LIST * config.nlist)
        index.train(vectors_of(np.sort(np.random.default_rng(seed).choice(rows, size, replace=False)))[1], seed)
    for start in range(0, len(rows), chunk):
        index.add(*vectors_of(rows[start : start + chunk]))
    return index


def from_state(config: IndexConfig, dim: int, arrays: dict[str, np.ndarray]) -> VectorIndex:
    """The index a snapshot's arrays hold; raises ValueError if they do not fit this collection."""
    index = faiss.deserialize_index(np.ascontiguousarray(arrays["faiss"], dtype=np.uint8))
    if index.d != dim:
        raise ValueError(f"snapshot dimension {index.d} != collection dimension {dim}")
    kind = CLASSES[config.kind]
    if issubclass(kind, HnswIndex):
        return kind(config, dim, index, arrays["dead"])
    return kind(config, dim, index)
