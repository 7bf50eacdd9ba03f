"""Classify streams judged by their collection: the leave-one-out reference, estimated accuracy (CBPE) against the
true accuracy, a label-mix change reported as such, collections kept apart, and too-small collections."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.drift import DriftMonitor
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
            seen.append(m.classify.report()[f"{name}/intent"].status)
    return seen, float(np.mean(right[-m.config.window :]))


def scopes(m: DriftMonitor) -> dict[str, Any]:
    """The classify streams as GET /drift shows them."""
    return m.report(detail=False)["classify"]


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
    scope = scopes(m)["intents/intent"]
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
    scope = scopes(m)["intents/intent"]
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
    streams = scopes(m)
    assert (streams["a/intent"]["n_total"], streams["b/intent"]["n_total"]) == (120, 50)


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


def unreadable() -> list[tuple[str, float, bool]]:
    raise AssertionError("a restored classify stream read its collection again")


def test_a_restart_brings_classify_streams_back(intents, tmp_path: Path) -> None:
    """Two monitors over one data directory: the second has the first's classify streams (reference, window,
    estimated accuracy, label mix, status history), judges on without reading the collection again, and the
    first's verdict stands until the next check."""
    collection, centres = intents
    first = monitor(tmp_path / "state", config=CHECKS)
    run(first, collection, queries(centres, 300, 0.32, seed=2, grouped=False))
    degraded, _ = run(first, collection, queries(centres, 250, 0.75, seed=3, grouped=False))
    assert "drift" in degraded
    before = scopes(first)
    first.close()
    saved = json.loads((tmp_path / "state" / "state.json").read_text())
    assert saved["classify"]["intents/intent"]["tracker"]["status"] == "drift"

    again = monitor(tmp_path / "state", config=CHECKS)
    assert scopes(again) == before
    assert before["intents/intent"]["status"] == "drift" and "label_mix" in before["intents/intent"]
    for vector, _ in queries(centres, CHECKS.check_every, 0.75, seed=6, grouped=False):
        answer = classify(collection, vector, "intent", 10)
        again.record_classification("intents", "intent", unreadable, answer.label, answer.confidence)
    again.run_due_checks()
    after = scopes(again)["intents/intent"]
    assert after["n_total"] == before["intents/intent"]["n_total"] + CHECKS.check_every
    assert after["reference"] == before["intents/intent"]["reference"]
    assert after["status"] == "drift" and after["estimated_accuracy"] != before["intents/intent"]["estimated_accuracy"]


def test_a_state_without_classify_streams_loads_and_a_damaged_one_is_set_aside(intents, tmp_path: Path) -> None:
    collection, centres = intents
    folder = tmp_path / "state"
    first = monitor(folder, config=CHECKS)
    first.record_many("similarity", [0.5] * 30)
    run(first, collection, queries(centres, 150, 0.32, seed=2, grouped=False))
    first.close()
    state = json.loads((folder / "state.json").read_text())

    older = {key: value for key, value in state.items() if key != "classify"}  # as written before they were saved
    (folder / "state.json").write_text(json.dumps(older))
    loaded = monitor(folder, config=CHECKS)
    assert scopes(loaded) == {} and loaded.stream_report("similarity")["n_total"] == 30
    assert not list(folder.glob("state.json.damaged-*"))

    state["classify"]["intents/intent"]["window"] = [[["not", "a", "label"], 0.5]]
    (folder / "state.json").write_text(json.dumps(state))
    fresh = monitor(folder, config=CHECKS)
    assert scopes(fresh) == {} and fresh.stream_report("similarity")["n_total"] == 0
    assert len(list(folder.glob("state.json.damaged-*"))) == 1  # kept for a look, never read again


INTENT_TEXTS = {
    "travel": ["book a flight to Oslo", "a train ticket to Rome", "hotel rooms in Paris", "rent a car in Lisbon"],
    "music": ["play some jazz", "put on a rock song", "the next track please", "turn the music up"],
    "weather": ["will it rain today", "how cold is it outside", "is it sunny tomorrow", "the forecast for Monday"],
}


def intent_items() -> list[dict[str, Any]]:
    return [
        {"id": f"{label}{i}", "text": text, "metadata": {"intent": label}}
        for label, rows in INTENT_TEXTS.items()
        for i, text in enumerate(rows * 3)
    ]


def test_classify_streams_restart_with_the_app_and_are_on_metrics(tmp_path: Path) -> None:
    """A real app, restarted over its data directory: the classify stream comes back on GET /drift, and /metrics
    exports its status and accuracies labelled by the stream, never by the labels it answers."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.test_drift_api import API_KEY, KEY

    limits = {"drift_min_samples": 20, "drift_check_every": 10, "api_key": API_KEY}
    texts, items = INTENT_TEXTS, intent_items()
    with client(data_dir=tmp_path, **limits) as c:
        assert c.put("/collections/intents", headers=KEY).status_code == 201
        assert c.post("/collections/intents/items", json={"items": items}, headers=KEY).status_code == 200
        for text in [t for rows in texts.values() for t in rows] * 3:
            body = {"text": text, "label_key": "intent", "k": 5}
            assert c.post("/collections/intents/classify", json=body).status_code == 200
        c.app.state.services.monitor.run_due_checks()
        before = c.get("/drift").json()["classify"]["intents/intent"]
        metrics = c.get("/metrics").text
    assert before["status"] != "pending" and before["n_total"] == 36
    with client(data_dir=tmp_path, **limits) as c:
        assert c.get("/drift").json()["classify"]["intents/intent"] == before
        families = {f.name: f for f in text_string_to_metric_families(c.get("/metrics").text)}
        assert c.delete("/collections/intents", headers=KEY).status_code == 204
        assert "intents/intent" not in c.get("/drift").json()["classify"]  # nor will it come back after a restart
    for name, value in [
        ("o2v_drift_classify_status", {"ok": 0, "warning": 1, "drift": 2}[before["status"]]),
        ("o2v_drift_classify_estimated_accuracy", before["estimated_accuracy"]),
        ("o2v_drift_classify_reference_accuracy", before["reference_accuracy"]),
    ]:
        assert [(s.labels, s.value) for s in families[name].samples] == [({"stream": "intents/intent"}, value)]
    assert not any(label in line for line in metrics.splitlines() if "classify" in line for label in texts)


def test_a_reembedded_collection_starts_its_classify_stream_over(tmp_path: Path) -> None:
    """Re-embedding puts a collection in another space: the stream's reference (its leave-one-out answers in the
    old vectors) would judge new answers against old ones, so the stream goes once the new vectors answer, and the
    next classify starts it again from the new vectors."""
    from tests.test_drift_api import API_KEY, KEY

    with client(data_dir=tmp_path, drift_min_samples=20, drift_check_every=10, api_key=API_KEY) as c:
        assert c.put("/collections/intents", headers=KEY).status_code == 201
        assert c.post("/collections/intents/items", json={"items": intent_items()}, headers=KEY).status_code == 200
        body = {"text": "play some jazz", "label_key": "intent", "k": 5}
        for _ in range(3):
            assert c.post("/collections/intents/classify", json=body).status_code == 200
        assert c.get("/drift").json()["classify"]["intents/intent"]["n_total"] == 3
        assert c.post("/collections/intents/reembed", headers=KEY).status_code == 202
        deadline = time.monotonic() + 60
        while c.get("/collections/intents").json()["reembed"]["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert c.get("/collections/intents").json()["reembed"]["state"] == "done"
        assert "intents/intent" not in c.get("/drift").json()["classify"]
        assert c.post("/collections/intents/classify", json=body).status_code == 200
        assert c.get("/drift").json()["classify"]["intents/intent"]["n_total"] == 1
