"""Classify streams judged by their collection: the leave-one-out reference, estimated accuracy (CBPE) against the
true accuracy, a label-mix change reported as such, collections kept apart, and too-small collections."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from service.drift.classify import Reference
from service.index.base import Item, VectorCollection
from service.index.classify import classify, leave_one_out
from service.index.engines.faiss.registry import FaissCollections
from tests.drift_fixtures import config, monitor
from tests.gateway_fixtures import client

DIM, LABELS, PER_LABEL = 24, 8, 30
CHECKS = config(window=200, min_samples=100, check_every=25)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture
def intents(tmp_path: Path) -> Iterator[tuple[VectorCollection, np.ndarray]]:
    """A collection of LABELS intents, PER_LABEL items each around its own centre (neighbouring intents overlap a
    little, so the leave-one-out accuracy is below 1), and the centres."""
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(LABELS, DIM)))
    registry = FaissCollections(tmp_path)
    collection = registry.create("intents")[0]
    items, vectors = [], []
    for label in range(LABELS):
        for i in range(PER_LABEL):
            items.append(Item(f"{label}-{i}", "", {"intent": f"i{label}"}))
            vectors.append(unit(centres[label] + rng.normal(scale=0.32, size=DIM)))
    collection.upsert(items, np.array(vectors, dtype=np.float32))
    yield collection, centres
    registry.close()


def queries(centres: np.ndarray, n: int, noise: float, seed: int, grouped: bool) -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, LABELS, n)) if grouped else rng.integers(0, LABELS, n)
    return [(unit(centres[y] + rng.normal(scale=noise, size=DIM)).astype(np.float32), f"i{y}") for y in labels]


def run(m, collection: VectorCollection, traffic: list[tuple[np.ndarray, str]], name: str = "intents"):
    """Classify every query as the route does, record it, check every check_every; (statuses, true accuracy)."""
    source = partial(leave_one_out, collection, "intent", 10)
    seen, right = [], []
    for i, (vector, truth) in enumerate(traffic):
        result = classify(collection, vector, "intent", 10)
        right.append(result.label == truth)
        m.record_classification(name, "intent", source, result.label, result.confidence)
        if (i + 1) % m.config.check_every == 0:
            m.run_due_checks()
            seen.append(m.classify.report()[f"{name}/intent"]["status"])
    return seen, float(np.mean(right[-m.config.window :]))


def test_leave_one_out_answers_each_item_against_the_others(intents) -> None:
    collection, _ = intents
    answers = leave_one_out(collection, "intent", 10)
    assert not isinstance(answers, str) and len(answers) == LABELS * PER_LABEL
    accuracy = np.mean([right for _, _, right in answers])
    assert 0.6 < accuracy < 1.0  # an item never votes for itself (else every answer would be right)
    reference = Reference.of(answers)
    assert reference.probability(np.array([0.0]))[0] < reference.probability(np.array([1.0]))[0]


def test_answers_less_sure_than_the_reference_are_estimated_below_its_lowest_bin() -> None:
    """Typo'd traffic: confidences mostly below anything the reference answered. Each answer is right with
    probability equal to its confidence, in the reference and live; the estimate follows the true accuracy within
    3 points instead of counting every unsure answer at the lowest bin's accuracy (15 points too high)."""
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.35, 1.0, 2000)
    reference = Reference.of([("a", float(c), bool(r)) for c, r in zip(conf, rng.random(2000) < conf, strict=True)])
    live = rng.uniform(0.05, 0.5, 4000)
    truth = float(np.mean(rng.random(4000) < live))
    assert abs(float(reference.probability(live).mean()) - truth) < 0.03
    probability = reference.probability(np.linspace(0.0, 1.0, 101))
    assert probability[0] == 0.0 and np.all(np.diff(probability) >= 0.0)  # monotone, nothing at support 0


def test_grouped_clean_traffic_is_a_label_mix_change_not_drift(intents) -> None:
    """Traffic sorted by intent (as a held-out intent set in file order): the label mix moves a lot, and is
    reported as such; the estimated accuracy follows the true one and the stream never goes to drift."""
    collection, centres = intents
    m = monitor(config=CHECKS)
    seen, truth = run(m, collection, queries(centres, 600, 0.32, seed=1, grouped=True))
    scope = m.classify.report()["intents/intent"]
    assert "drift" not in seen and scope["reference"]["kind"] == "collection"
    assert scope["label_mix"]["status"] == "changed"
    assert scope["label_mix"]["labels"][0]["live_share"] > 0.25  # the last window is a few intents only
    assert abs(scope["estimated_accuracy"] - truth) < 0.08
    assert "label mix changed" in scope["advice"] and "fell" not in scope["advice"]


def test_degraded_queries_drift_with_the_estimated_accuracy(intents) -> None:
    collection, centres = intents
    m = monitor(config=CHECKS)
    clean, _ = run(m, collection, queries(centres, 300, 0.32, seed=2, grouped=False))
    assert "drift" not in clean
    degraded, truth = run(m, collection, queries(centres, 250, 0.75, seed=3, grouped=False))
    scope = m.classify.report()["intents/intent"]
    assert "drift" in degraded
    assert scope["estimated_accuracy"] < scope["reference_accuracy"] - 0.05
    # CBPE sees the fall through the confidences only, and maps confidences below the reference's lowest bin to
    # that bin's accuracy: here (queries pushed far from every centre) it catches about a third of the fall.
    # bench.drift_streams measures the gap on typo'd CLINC150.
    assert scope["reference_accuracy"] - scope["estimated_accuracy"] > 0.3 * (scope["reference_accuracy"] - truth)
    assert (
        f"Estimated accuracy fell from {scope['expected_accuracy']:.2f} to {scope['estimated_accuracy']:.2f}"
        in (scope["advice"])
    )


def test_collections_are_separate_streams(intents) -> None:
    collection, centres = intents
    m = monitor(config=CHECKS)
    run(m, collection, queries(centres, 120, 0.32, seed=4, grouped=False), name="a")
    run(m, collection, queries(centres, 50, 0.32, seed=5, grouped=False), name="b")
    scopes = m.classify.report()
    assert (scopes["a/intent"]["n_total"], scopes["b/intent"]["n_total"]) == (120, 50)


def test_a_collection_too_small_for_a_reference_says_so(tmp_path: Path) -> None:
    with client(data_dir=tmp_path, drift_min_samples=10, drift_check_every=1) as c:
        assert c.put("/collections/tiny").status_code == 201
        items = [{"id": "1", "text": "book a flight", "metadata": {"intent": "travel"}}]
        items.append({"id": "2", "text": "play some jazz", "metadata": {"intent": "music"}})
        assert c.post("/collections/tiny/items", json={"items": items}).status_code == 200
        answer = c.post("/collections/tiny/classify", json={"text": "a flight to Oslo", "label_key": "intent", "k": 2})
        assert answer.status_code == 200
        c.app.state.services.monitor.run_due_checks()
        scope = c.get("/drift").json()["classify"]["tiny/intent"]
        assert scope["reference"] == "insufficient" and "2 labels of 2 items" in scope["reason"]
        assert scope["status"] == "pending"
