"""Out-of-scope calibration: the classify threshold (min_score), and per-label thresholds where they help, chosen on
labelled validation utterances that include out-of-scope ones, and stored with the collection.

Each utterance is classified once with no threshold (the kNN vote of classify.py); a threshold t turns every answer
whose support is below t into "out of scope". t is chosen to maximise balanced accuracy, the mean of in-scope
accuracy (right label and kept) and out-of-scope recall, so a validation set with few out-of-scope rows does not
push t to zero. Per-label thresholds (one per voted label, the others at t) are adopted only when they beat the
single threshold on held-out halves (2-fold cross-validation), as each is fitted on few utterances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.index.base import VectorCollection
from service.index.classify import classify
from service.index.metadata import canonical

MIN_ROWS_PER_LABEL = 5
"""Labels voted for fewer validation utterances than this keep the single threshold."""
CV_MARGIN = 0.005
"""Per-label thresholds must beat the single one by this much balanced accuracy on the held-out halves."""
NO_THRESHOLD = -1.0
"""Below any support (supports are ≥ 0)."""


@dataclass
class Votes:
    """Each validation utterance's voted label (canonical), support and truth (canonical; None = out of scope)."""

    voted: np.ndarray
    support: np.ndarray
    truth: np.ndarray

    def subset(self, rows: np.ndarray) -> Votes:
        return Votes(self.voted[rows], self.support[rows], self.truth[rows])


@dataclass
class Calibration:
    label_key: str
    k: int
    min_score: float
    label_min_scores: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    out_of_scope_rows: int = 0
    oos_precision: float = float("nan")
    oos_recall: float = float("nan")
    in_scope_accuracy: float = float("nan")
    balanced_accuracy: float = float("nan")
    cv_single: float = float("nan")
    cv_per_label: float = float("nan")

    def attributes(self) -> dict[str, Any]:
        """What the collection stores: classify without a min_score uses it."""
        return {"min_score": self.min_score, "label_key": self.label_key, "label_min_scores": self.label_min_scores}


def votes(collection: VectorCollection, vectors: np.ndarray, labels: Sequence[Any], label_key: str, k: int) -> Votes:
    """Classify each vector with no threshold; `labels` are the true labels, None for out of scope."""
    results = [classify(collection, v, label_key, k, NO_THRESHOLD) for v in vectors]
    voted = np.array([canonical(r.label) if r.label is not None else None for r in results], dtype=object)
    support = np.array([r.confidence for r in results], dtype=np.float64)
    truth = np.array([canonical(label) if label is not None else None for label in labels], dtype=object)
    return Votes(voted, support, truth)


def thresholds_of(v: Votes, min_score: float, per_label: dict[str, float]) -> np.ndarray:
    return np.array([per_label.get(label, min_score) for label in v.voted], dtype=np.float64)


def measure(v: Votes, min_score: float, per_label: dict[str, float]) -> dict[str, float]:
    """In-scope accuracy, out-of-scope precision and recall, and their balanced accuracy at these thresholds."""
    rejected = (v.support < thresholds_of(v, min_score, per_label)) | np.array([x is None for x in v.voted])
    oos = np.array([t is None for t in v.truth])
    right = ~rejected & (v.voted == v.truth) & ~oos
    accuracy = float(right[~oos].mean()) if (~oos).any() else float("nan")
    recall = float(rejected[oos].mean()) if oos.any() else float("nan")
    precision = float(oos[rejected].mean()) if rejected.any() else float("nan")
    balanced = float(np.nanmean([accuracy, recall])) if (~oos).any() or oos.any() else float("nan")
    return {"accuracy": accuracy, "recall": recall, "precision": precision, "balanced": balanced}


def _best(v: Votes, candidates: np.ndarray, score: Any) -> float:
    """The best-scoring threshold: the lowest candidate (a support value, sorted) with the top score, moved down to
    the middle of the gap below it, which rejects the same validation rows and leaves margin on both sides."""
    best, best_score = 0, -np.inf
    for i, t in enumerate(candidates):
        s = score(float(t))
        if s > best_score + 1e-12:
            best, best_score = i, s
    below = candidates[best - 1] if best > 0 else None
    return float(candidates[best]) if below is None else float((candidates[best] + below) / 2)


def fit(v: Votes, per_label: bool) -> tuple[float, dict[str, float]]:
    """The single threshold, then (if asked) each label's, one at a time with the others fixed."""
    candidates = np.unique(np.concatenate([[0.0], v.support]))
    single = _best(v, candidates, lambda t: measure(v, t, {})["balanced"])
    chosen: dict[str, float] = {}
    if not per_label:
        return single, chosen
    labels, counts = np.unique(np.array([x for x in v.voted if x is not None], dtype=object), return_counts=True)
    for label, count in zip(labels, counts, strict=True):
        if count < MIN_ROWS_PER_LABEL:
            continue
        mine = np.unique(np.concatenate([[0.0, single], v.support[v.voted == label]]))
        t = _best(v, mine, lambda t, label=label: measure(v, single, {**chosen, label: t})["balanced"])
        if t != single:
            chosen[label] = t
    return single, chosen


def calibrate(
    collection: VectorCollection, vectors: np.ndarray, labels: Sequence[Any], label_key: str = "label", k: int = 10
) -> Calibration:
    """Choose min_score (and per-label thresholds if they help on held-out halves) from validation utterances."""
    v = votes(collection, vectors, labels, label_key, k)
    halves = [np.arange(len(labels))[i::2] for i in (0, 1)]
    cv = {}
    for per_label in (False, True):
        scores = []
        for train, test in (halves, halves[::-1]):
            single, chosen = fit(v.subset(train), per_label)
            scores.append(measure(v.subset(test), single, chosen)["balanced"])
        cv[per_label] = float(np.mean(scores))
    use_per_label = cv[True] > cv[False] + CV_MARGIN
    single, chosen = fit(v, use_per_label)
    at = measure(v, single, chosen)
    return Calibration(
        label_key,
        k,
        single,
        chosen,
        rows=len(labels),
        out_of_scope_rows=int(sum(label is None for label in labels)),
        oos_precision=at["precision"],
        oos_recall=at["recall"],
        in_scope_accuracy=at["accuracy"],
        balanced_accuracy=at["balanced"],
        cv_single=cv[False],
        cv_per_label=cv[True],
    )
