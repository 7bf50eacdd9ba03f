"""kNN classification over a collection: neighbours that carry the label key vote with their cosine."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.index.base import Hit, VectorCollection, check_k
from service.index.errors import InvalidRequest
from service.index.metadata import ANY, canonical, check_string


@dataclass(frozen=True)
class Classification:
    label: Any
    """The winning label value as stored, or None: out of scope (best support below min_score)."""
    confidence: float
    """Support of the winning label: the sum of its voters' cosines over the number of neighbours."""
    neighbors: list[Hit]


def classify(collection: VectorCollection, vector: Any, label_key: str, k: int, min_score: float) -> Classification:
    """Vote among the k nearest items that have `label_key`; items without it never vote."""
    check_string(label_key, "label_key", "label_key")
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not math.isfinite(min_score):
        raise InvalidRequest("min_score must be a finite number", "min_score")
    neighbors = collection.nearest(vector, check_k(collection, k, "k"), {label_key: ANY})
    return vote(neighbors, label_key, min_score)


def vote(neighbors: Sequence[Hit], label_key: str, min_score: float) -> Classification:
    """Support = Σ cosine of a label's voters / number of voters in all, so it is high only when the neighbours
    are both close and agree; a far-away query (out of scope) gets low support whatever they agree on.
    Ties go to the label of the nearer neighbour."""
    support: dict[str, float] = {}
    values: dict[str, Any] = {}
    for hit in neighbors:
        key = canonical(hit.metadata[label_key])
        assert key is not None
        support[key] = support.get(key, 0.0) + max(hit.score, 0.0) / len(neighbors)
        values.setdefault(key, hit.metadata[label_key])
    if not support:
        return Classification(None, 0.0, list(neighbors))
    best = max(support, key=support.__getitem__)
    confidence = support[best]
    return Classification(values[best] if confidence >= min_score else None, confidence, list(neighbors))
