"""Filtered nearest-neighbour search over an open collection's index and store."""

from __future__ import annotations

import math

import numpy as np

from service.index.engines.faiss.mirror import IndexMirror
from service.index.engines.faiss.vector_index import exact_topk
from service.index.metadata import Conditions, matches

OVERFETCH = 2.0
"""A common filter value is first searched for among OVERFETCH × top_k / (its share) unfiltered neighbours."""


def nearest_rows(
    mirror: IndexMirror, query: np.ndarray, k: int, conditions: Conditions
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the k nearest items meeting `conditions`. Filters matching few items are searched
    exactly; common ones (many items, or at least half) by over-fetching from the index and checking, falling back
    to exact search when too few survive."""
    index, store = mirror.index, mirror.store
    assert index is not None
    if not conditions:
        return index_search(mirror, query, k)
    count = store.count_matching(conditions)
    if count == 0:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    # Over-fetch from the in-memory index when the filter matches many items, or most of them (classify's
    # "has a label" filter usually does): reading their vectors back from SQLite would cost far more.
    if count > mirror.options.filter_exact_max or 2 * count >= index.size:
        fetch = min(index.size, math.ceil(OVERFETCH * k * index.size / count) + k)
        scores, rows = index_search(mirror, query, fetch)
        found = store.items(rows.tolist())
        keep = [i for i, r in enumerate(rows.tolist()) if r in found and matches(found[r].metadata, conditions)]
        if len(keep) >= min(k, count):
            return scores[keep[:k]], rows[keep[:k]]
    rows, vectors = store.vectors(store.rows_matching(conditions).tolist(), mirror.dim or 0)
    return exact_topk(query, rows, vectors, k)


def index_search(mirror: IndexMirror, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The index's best k; a compressed index re-ranks with the float vectors read from SQLite per query (no RAM
    of their own)."""
    assert mirror.index is not None
    dim = mirror.dim or 0
    scores, rows = mirror.index.search(query[None, :], k, lambda r: mirror.store.vectors(r.tolist(), dim))
    valid = rows[0] >= 0
    return scores[0][valid], rows[0][valid]
