"""kNN classification over a collection: neighbours that carry the label key vote with their cosine."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.index.base import Hit, Item, VectorCollection, check_k
from service.index.errors import InvalidRequest
from service.index.metadata import ANY, canonical, check_string


@dataclass(frozen=True)
class Classification:
    label: Any
    """The winning label value as stored, or None: out of scope (best support below min_score)."""
    confidence: float
    """Support of the winning label: the sum of its voters' cosines over the number of neighbours."""
    neighbors: list[Hit]


DEFAULT_MIN_SCORE = 0.0
"""Support below which classify answers null when neither the request nor the collection says (PUT `min_score`, or
`o2v index calibrate`): none. A support threshold means something for one model and one label set only, which is
what calibration measures; a server-wide guess would mislead every other collection."""


def thresholds(
    collection: VectorCollection, label_key: str, min_score: float | None
) -> tuple[float, Mapping[str, float]]:
    """The min_score a vote uses, and per-label ones: the request's, else the collection's stored (with its per-label
    thresholds when they were calibrated for this label_key), else DEFAULT_MIN_SCORE."""
    if min_score is not None:
        return min_score, {}
    stored = collection.attributes()
    per_label = stored.get("label_min_scores") or {} if stored.get("label_key", label_key) == label_key else {}
    return stored.get("min_score", DEFAULT_MIN_SCORE), per_label


def classify(
    collection: VectorCollection,
    vector: Any,
    label_key: str,
    k: int,
    min_score: float | None = None,
) -> Classification:
    """Vote among the k nearest items that have `label_key`; items without it never vote. Without a `min_score` the
    collection's stored one applies (with its per-label thresholds when they were calibrated for this label_key),
    else DEFAULT_MIN_SCORE."""
    check_string(label_key, "label_key", "label_key")
    min_score, per_label = thresholds(collection, label_key, min_score)
    check_min_score(min_score)
    neighbors = collection.nearest(vector, check_k(collection, k, "k"), {label_key: ANY})
    keys = [canonical(hit.metadata[label_key]) for hit in neighbors]
    assert None not in keys  # the filter matched scalar label values only
    key, confidence = vote(keys, [hit.score for hit in neighbors], min_score, per_label)
    label = None if key is None else neighbors[keys.index(key)].metadata[label_key]  # as stored: 1 stays 1, not "1"
    return Classification(label, confidence, list(neighbors))


def check_min_score(min_score: Any, field: str = "min_score") -> float:
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not math.isfinite(min_score):
        raise InvalidRequest("min_score must be a finite number", field)
    return float(min_score)


def vote(
    labels: Sequence[Hashable], scores: Sequence[float], min_score: float, per_label: Mapping[Any, float] | None = None
) -> tuple[Any, float]:
    """The kNN vote of the classify route, `o2v eval`, bench.intent and calibration: (winning label or None, its
    support) from the labels and cosines of the neighbours that carry a label, nearest first.

    Support = Σ cosine (below 0 counts 0) of a label's voters / number of voters in all, so it is high only when the
    neighbours are both close and agree; a far-away query (out of scope) gets low support whatever they agree on.
    Ties go to the label of the nearer neighbour. The winner is None (out of scope) when its support is below its
    threshold: `per_label[winner]` where given (calibrated per-label thresholds), else `min_score`."""
    support: dict[Hashable, float] = {}
    for label, score in zip(labels, scores, strict=True):
        support[label] = support.get(label, 0.0) + max(float(score), 0.0) / len(labels)
    if not support:
        return None, 0.0
    best = max(support, key=support.__getitem__)  # the first of equals: insertion order is nearest first
    confidence = support[best]
    return (best if confidence >= (per_label or {}).get(best, min_score) else None), confidence


def set_min_score(collection: VectorCollection, min_score: float) -> None:
    """A min_score set by hand replaces a calibration's thresholds; setting the same value again changes nothing."""
    check_min_score(min_score)
    if collection.attributes().get("min_score") != min_score:
        collection.set_attributes({"min_score": min_score, "label_min_scores": None, "label_key": None})


LOO_PAGE = 1000


def leave_one_out(
    collection: VectorCollection,
    label_key: str,
    k: int,
    min_score: float | None = None,
    limit: int = 2000,
    seed: int = 20261130,
) -> list[tuple[Any, float, bool]] | str:
    """Each of up to `limit` items having `label_key` (a seeded sample) classified against all the others, as the
    classify route would answer it (same k, same thresholds): (label or None, confidence, right) per item. A string
    says why there is no answer worth having: fewer than two labels with at least two items each (an item whose label
    no other item carries can never be answered right)."""
    rows: list[Item] = []
    after: str | None = None
    while True:
        page = collection.scroll(after, LOO_PAGE, {label_key: ANY}, with_vectors=True)
        rows += page
        if len(page) < LOO_PAGE:
            break
        after = page[-1].id
    labels = Counter(canonical(item.metadata[label_key]) for item in rows)
    if sum(1 for count in labels.values() if count >= 2) < 2:
        return (
            f"{len(rows)} items with {label_key!r}, in {len(labels)} labels: at least 2 labels of 2 items each needed"
        )
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(rows), min(limit, len(rows)), replace=False).tolist())
    min_score, per_label = thresholds(collection, label_key, min_score)
    answers = []
    for i in chosen:
        item = rows[i]
        hits = [h for h in collection.nearest(item.vector, min(k + 1, len(rows)), {label_key: ANY}) if h.id != item.id]
        hits = hits[:k]
        keys = [canonical(hit.metadata[label_key]) for hit in hits]
        key, confidence = vote(keys, [hit.score for hit in hits], float(min_score), per_label)
        answers.append((key, confidence, key is not None and key == canonical(item.metadata[label_key])))
    return answers
