"""kNN classify (in scope, out of scope, unlabelled items) and seeded k-means clusters, on both engines."""

from __future__ import annotations

import numpy as np
import pytest

from service.index.classify import classify
from service.index.cluster import cluster
from service.index.engines.faiss.store import Item
from service.index.errors import InvalidRequest
from tests.index_fixtures import DIM, registry, unit_vectors


def blobs(n_per: int, centres: np.ndarray, spread: float, seed: int) -> np.ndarray:
    """Points scattered around each centre in turn (centre 0, 1, 2, 0, 1, 2, ...)."""
    noise = np.random.default_rng(seed).standard_normal((n_per * len(centres), centres.shape[1])) * spread
    return (np.tile(centres, (n_per, 1)) + noise).astype(np.float32)


@pytest.fixture
def labelled(tmp_path, store):
    centres = unit_vectors(3, seed=5)
    collection, _ = registry(tmp_path, store=store).create("intents", "hnsw")
    vectors = blobs(30, centres, 0.05, seed=1)
    labels = ["greet", "bye", "help"]
    batch = [Item(f"t{i}", f"utterance {i}", {"label": labels[i % 3]}) for i in range(len(vectors))]
    collection.upsert(batch, vectors)
    return collection, centres, labels


def test_in_scope_queries_get_their_label(labelled) -> None:
    collection, centres, labels = labelled
    for centre, label in zip(centres, labels, strict=True):
        result = classify(collection, centre, "label", 10, min_score=0.5)
        assert result.label == label
        assert result.confidence > 0.9
        assert len(result.neighbors) == 10


def test_out_of_scope_query_gets_null(labelled) -> None:
    collection, centres, _ = labelled
    far = np.random.default_rng(3).standard_normal(DIM)
    far -= centres.T @ np.linalg.lstsq(centres.T, far, rcond=None)[0]
    result = classify(collection, far, "label", 10, min_score=0.5)
    assert result.label is None
    assert result.confidence < 0.5
    assert classify(collection, far, "label", 10, min_score=-1.0).label is not None


def test_items_without_the_label_key_never_vote(labelled) -> None:
    collection, centres, _ = labelled
    collection.upsert([Item(f"u{i}", "", {}) for i in range(20)], np.tile(centres[0], (20, 1)))
    result = classify(collection, centres[0], "label", 5, min_score=0.0)
    assert result.label == "greet"
    assert all(not h.id.startswith("u") for h in result.neighbors)
    assert classify(collection, centres[0], "nope", 5, 0.0).label is None


def test_numeric_labels_come_back_as_stored(tmp_path, store) -> None:
    collection, _ = registry(tmp_path, store=store).create("c")
    collection.upsert([Item("a", "", {"label": 1}), Item("b", "", {"label": 0})], unit_vectors(2))
    assert classify(collection, unit_vectors(2)[0], "label", 1, 0.0).label == 1
    with pytest.raises(InvalidRequest) as err:
        classify(collection, unit_vectors(2)[0], "label", 0, 0.0)
    assert err.value.field == "k"


def test_cluster_is_repeatable_with_a_seed_and_finds_blobs(tmp_path, store) -> None:
    centres = unit_vectors(4, seed=11)
    collection, _ = registry(tmp_path, store=store).create("c", "ivf")
    vectors = blobs(50, centres, 0.03, seed=2)
    collection.upsert([Item(f"p{i}", f"point {i}", {}) for i in range(len(vectors))], vectors)
    first, second = cluster(collection, 4, seed=7), cluster(collection, 4, seed=7)
    assert first == second
    assert [c.size for c in first.clusters] == [50, 50, 50, 50]
    assert len(first.assignments) == 200
    for c in first.clusters:
        members = {i for i, a in first.assignments.items() if a == c.cluster}
        assert len({int(i[1:]) % 4 for i in members}) == 1, "each cluster is one blob"
        assert len(c.representatives) == 3 and {r.id for r in c.representatives} <= members


def test_cluster_k_bounds(tmp_path, store) -> None:
    collection, _ = registry(tmp_path, store=store).create("c")
    collection.upsert([Item("a", "", {})], unit_vectors(1))
    for k in (0, 2):
        with pytest.raises(InvalidRequest) as err:
            cluster(collection, k)
        assert err.value.field == "k"
