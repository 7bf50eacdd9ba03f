"""k-means over a collection's vectors (faiss.Kmeans, spherical, seeded) with the items nearest each centroid.

A request's cost is bounded before any work starts (k × items × restarts, O2V_MAX_CLUSTER_WORK), and the restarts
run one by one so a caller that has gone (or a shutdown) stops the work between two of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np

from service.index.base import Item, VectorCollection, positive
from service.index.errors import CollectionError, InvalidRequest
from service.settings import Settings

NITER = 20
NREDO = 5  # restarts, the best objective kept: one random start splits well-separated groups wrongly too often
SEED_MIN, SEED_MAX = 0, 2**31 - 1
"""FAISS takes a 32-bit int seed (past it the call overflows) and draws a random one for any negative seed, which
would break "same seed, same clusters"."""
REDO_STRIDE = 15_486_557
"""FAISS's own step between the seeds of its restarts."""
MAX_WORK = Settings.flat_defaults()["max_cluster_work"]


class Cancelled(CollectionError):
    """Stopped before the clustering finished: the caller went away (nobody reads this) or the server is stopping
    (503: try again)."""

    status = 503


@dataclass(frozen=True)
class Cluster:
    cluster: int
    size: int
    representatives: list[Item]
    """Members nearest the centroid, nearest first."""


@dataclass(frozen=True)
class Clustering:
    clusters: list[Cluster]
    """Largest first; `cluster` numbers follow this order."""
    assignments: dict[str, int]


def check_seed(seed: object) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not SEED_MIN <= seed <= SEED_MAX:
        raise InvalidRequest(f"seed must be an integer from {SEED_MIN} to {SEED_MAX}", "seed")
    return seed


def cluster(
    collection: VectorCollection,
    k: int,
    seed: int = 1234,
    representatives: int = 3,
    max_work: int = MAX_WORK,
    cancelled: Callable[[], bool] = lambda: False,
) -> Clustering:
    """Same seed and same items → same clusters. Reads the stored vectors back and runs k-means here, so it never
    depends on the index kind or the engine. `cancelled()` is asked before each restart."""
    check_seed(seed)
    ids, vectors = collection.vectors()
    if positive(k, "k") > len(ids):
        raise InvalidRequest(f"k={k} is more than the {len(ids)} items in the collection", "k")
    if k * len(ids) * NREDO > max_work:
        most = max_work // (len(ids) * NREDO)
        message = f"k={k} over {len(ids)} items is more work than allowed (O2V_MAX_CLUSTER_WORK): at most k={most}"
        raise InvalidRequest(message, "k")
    centroids = _best_of_restarts(vectors, k, seed, cancelled)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(centroids)
    scores, assigned = index.search(vectors, 1)
    scores, assigned = scores[:, 0], assigned[:, 0]
    sizes = np.bincount(assigned, minlength=k)
    order = sorted(range(k), key=lambda c: (-sizes[c], c))
    renumber = {old: new for new, old in enumerate(order)}
    clusters = []
    for new, old in enumerate(order):
        members = np.flatnonzero(assigned == old)
        nearest = members[np.lexsort((members, -scores[members]))][:representatives]
        items = collection.items([ids[i] for i in nearest])
        clusters.append(Cluster(new, int(sizes[old]), [it for it in items if it is not None]))
    return Clustering(clusters, {ids[i]: renumber[int(c)] for i, c in enumerate(assigned)})


def _best_of_restarts(vectors: np.ndarray, k: int, seed: int, cancelled: Callable[[], bool]) -> np.ndarray:
    """NREDO single k-means runs with FAISS's restart seeds (wrapped to stay non-negative 32-bit ints); the
    centroids of the best objective (the highest total cosine), as faiss.Kmeans(nredo=NREDO) keeps them."""
    best, best_obj = None, -np.inf
    for redo in range(NREDO):
        if cancelled():
            raise Cancelled("clustering was stopped (the caller went away or the server is stopping)")
        redo_seed = (seed + redo * REDO_STRIDE) % (SEED_MAX + 1)
        km = faiss.Kmeans(vectors.shape[1], k, niter=NITER, seed=redo_seed, spherical=True, min_points_per_centroid=1)
        km.train(vectors)
        if best is None or km.obj[-1] > best_obj:
            best, best_obj = km.centroids, km.obj[-1]
    assert best is not None
    return best
