"""The kNN vote behind `o2v eval` and bench.quality: cosine-weighted, best support reported."""

from __future__ import annotations

import numpy as np

from service.evaluation import knn


def test_knn_votes_by_summed_cosine() -> None:
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], dtype=np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    labels = np.array(["a", "a", "b"])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    pred, support = knn(train, labels, queries, k=2)
    assert pred.tolist() == ["a", "b"]
    np.testing.assert_allclose(support, [1.0, 1.0], atol=1e-6)
