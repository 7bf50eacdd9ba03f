"""Model quality on the public benchmarks: STS-B test Spearman and CLINC150 kNN intent accuracy (`o2v eval`).

`embed` is any function texts → L2-normalised float32 rows, so the bundled model and a peer are scored alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import spearmanr

from service.datasets import read_clinc, read_sts

Embed = Callable[[Sequence[str]], np.ndarray]


def sts_spearman(embed: Embed) -> float:
    """Spearman of the cosine of each STS-B test pair with its human score."""
    pairs = read_sts("test")
    a = embed([p.a for p in pairs])
    b = embed([p.b for p in pairs])
    return float(spearmanr((a * b).sum(1), [p.score for p in pairs]).statistic)


def knn(train_vecs: np.ndarray, train_labels: np.ndarray, queries: np.ndarray, k: int = 10):
    """Cosine-weighted vote of the k nearest train items: (label, best support cosine) per query."""
    sims = queries @ train_vecs.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    labels, support = [], []
    for row, idx in enumerate(top):
        votes: dict[str, float] = {}
        for j in idx:
            votes[train_labels[j]] = votes.get(train_labels[j], 0.0) + float(sims[row, j])
        best = max(votes, key=votes.get)  # type: ignore[arg-type]
        labels.append(best)
        support.append(float(sims[row, idx].max()))
    return np.array(labels), np.array(support)


def clinc(embed: Embed) -> dict[str, float]:
    """k=10 kNN over CLINC150 train; out of scope below the 5th percentile of in-scope val support."""
    train = [(t, y) for t, y in read_clinc("train") if y != "oos"]
    vecs = embed([t for t, _ in train])
    labels = np.array([y for _, y in train])
    val = read_clinc("val")
    _val_pred, val_support = knn(vecs, labels, embed([t for t, _ in val]))
    val_in = np.array([y != "oos" for _, y in val])
    # out of scope when the nearest train item is less similar than 95 % of in-scope val queries' nearest
    threshold = float(np.quantile(val_support[val_in], 0.05))
    test = read_clinc("test")
    pred, support = knn(vecs, labels, embed([t for t, _ in test]))
    gold = np.array([y for _, y in test])
    in_scope = gold != "oos"
    flagged = support < threshold
    return {
        "clinc_acc": round(float((pred[in_scope] == gold[in_scope]).mean()), 4),
        "oos_recall": round(float(flagged[~in_scope].mean()), 4),
        "oos_threshold": round(threshold, 4),
    }
