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
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import faiss
import numpy as np

from service.index.errors import InvalidRequest, Unusable
from service.settings import INDEX_PARAM_MAX, INDEX_PARAM_MIN, Settings

Kind = Literal["flat", "hnsw", "ivf", "hnsw_sq8", "ivf_pq"]
KINDS: tuple[Kind, ...] = ("flat", "hnsw", "ivf", "hnsw_sq8", "ivf_pq")
PARAMS: dict[str, tuple[str, ...]] = {
    "flat": (),
    "hnsw": ("m", "ef_construction", "ef_search"),
    "ivf": ("nlist", "nprobe", "min_train"),
    "hnsw_sq8": ("m", "ef_construction", "ef_search", "rerank"),
    "ivf_pq": ("nlist", "nprobe", "min_train", "pq_m", "rerank"),
}
DEFAULTS = Settings.flat_defaults()
"""Settings' own defaults (not the environment's): an IndexConfig() without settings gets the same values."""
POINTS_PER_LIST = 39
"""FAISS k-means wants at least this many training points per centroid."""
TRAIN_PER_LIST = 256
"""A streamed build trains IVF on at most this many sampled vectors per list: FAISS's k-means samples down to
as many itself."""
PQ_CENTROIDS = 256
"""Centroids of each 8-bit product-quantizer part: its k-means needs at least this many training vectors."""


@dataclass(frozen=True)
class IndexConfig:
    """A collection's index kind and the parameters that kind reads; stored with the collection."""

    kind: Kind = DEFAULTS["index_default"].kind
    m: int = DEFAULTS["hnsw_m"]
    ef_construction: int = DEFAULTS["hnsw_ef_construction"]
    ef_search: int = DEFAULTS["hnsw_ef_search"]
    nlist: int = DEFAULTS["ivf_nlist"]
    nprobe: int = DEFAULTS["ivf_nprobe"]
    min_train: int = DEFAULTS["ivf_min_train"]
    pq_m: int = DEFAULTS["ivf_pq_m"]
    rerank: int = DEFAULTS["index_rerank"]
    rebuild_deleted_share: float = DEFAULTS["hnsw_rebuild_deleted_share"]

    @classmethod
    def defaults(cls, settings: Settings) -> IndexConfig:
        """The service-wide defaults from Settings (hnsw_*, ivf_*, index_default)."""
        return cls(
            kind=settings.index.default.kind,
            m=settings.index.default.m,
            ef_construction=settings.index.default.ef_construction,
            ef_search=settings.index.default.ef_search,
            nlist=settings.index.default.nlist,
            nprobe=settings.index.default.nprobe,
            min_train=settings.index.default.min_train,
            pq_m=settings.index.default.pq_m,
            rerank=settings.index.default.rerank,
            rebuild_deleted_share=settings.index.default.rebuild_deleted_share,
        )

    def with_params(self, kind: str | None, params: dict[str, Any]) -> IndexConfig:
        """Defaults overridden by a create request; names a bad field rather than ignoring it. The bounds are what
        FAISS and Milvus really take (INDEX_PARAM_MIN/MAX): out of them FAISS may crash the process, not raise."""
        kind = kind or self.kind
        if kind not in KINDS:
            raise InvalidRequest(f"index must be one of {', '.join(KINDS)}", "index")
        for key, value in params.items():
            if key not in PARAMS[kind]:
                raise InvalidRequest(f"{key} is not a parameter of a {kind} index", key)
            low, high = INDEX_PARAM_MIN[key], INDEX_PARAM_MAX[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidRequest(f"{key} must be an integer from {low} to {high}", key)
        return replace(self, kind=kind, **params)

    def public(self) -> dict[str, Any]:
        """The kind and only the parameters it uses."""
        full = asdict(self)
        return {"index": self.kind, **{k: full[k] for k in PARAMS[self.kind]}}

    def from_public(self, data: Any, name: str) -> IndexConfig:
        """Collection `name`'s stored `public()` dict read back over these defaults; Unusable (409, naming the
        collection and the parameter) when this build cannot run it, e.g. an older data directory's m=1."""
        if not isinstance(data, dict):
            raise Unusable(f"collection {name!r} has no readable index settings; drop it and create it again", "index")
        try:
            return self.with_params(data.get("index"), {k: v for k, v in data.items() if k != "index"})
        except InvalidRequest as exc:
            message = f"collection {name!r} is stored with settings this server cannot use: {exc.message}; drop it"
            raise Unusable(message + " and create it again", exc.field) from exc


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Float32, C-contiguous, each row scaled to length 1; zero and non-finite rows come back all zeros (callers
    refuse them). Scaled in float64 by the row's largest value first, so rows of 1e38s (whose float32 norm is inf)
    or of subnormals (whose float32 norm is 0) keep their direction instead of becoming zeros."""
    wide = np.asarray(vectors, dtype=np.float64)
    if wide.size == 0:
        return np.zeros(wide.shape, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        peak = np.abs(wide).max(axis=1, keepdims=True)
        usable = np.isfinite(peak) & (peak > 0)
        scaled = wide / np.where(usable, peak, 1.0)
        norms = np.linalg.norm(scaled, axis=1, keepdims=True)
        unit = np.where(usable, scaled / np.where(usable, norms, 1.0), 0.0)
    return np.ascontiguousarray(unit, dtype=np.float32)


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


def pq_parts(dim: int, pq_m: int) -> int:
    """Product-quantizer parts: the largest divisor of `dim` up to pq_m, as FAISS splits a vector evenly."""
    return max(p for p in range(1, min(pq_m, dim) + 1) if dim % p == 0)


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
