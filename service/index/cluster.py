"""k-means over a collection's vectors (faiss.Kmeans, spherical, seeded) with the items nearest each centroid."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from service.index.base import Item, VectorCollection, positive
from service.index.errors import InvalidRequest

NITER = 20
NREDO = 5  # restarts, the best objective kept: one random start splits well-separated groups wrongly too often


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


def cluster(collection: VectorCollection, k: int, seed: int = 1234, representatives: int = 3) -> Clustering:
    """Same seed and same items → same clusters. Reads the stored vectors back and runs k-means here, so it never
    depends on the index kind or the engine."""
    ids, vectors = collection.vectors()
    if positive(k, "k") > len(ids):
        raise InvalidRequest(f"k={k} is more than the {len(ids)} items in the collection", "k")
    km = faiss.Kmeans(
        vectors.shape[1], k, niter=NITER, nredo=NREDO, seed=seed, spherical=True, min_points_per_centroid=1
    )
    km.train(vectors)
    scores, assigned = km.index.search(vectors, 1)
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
