"""Out-of-scope calibration (service/index/calibrate.py, `o2v index calibrate`) and the min_score a collection
stores (PUT, classify without min_score), on each engine where storage is involved."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.cli import main
from service.index.base import Item
from service.index.calibrate import Votes, calibrate, fit, measure
from service.index.classify import classify
from service.index.metadata import canonical
from service.settings import Settings
from tests.index_fixtures import registry, unit_vectors, use_store
from tests.test_collections_api import API_KEY, KEY, REVIEWS


def near(centre: np.ndarray, n: int, spread: float, seed: int) -> np.ndarray:
    x = centre + spread * np.random.default_rng(seed).standard_normal((n, len(centre)))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_calibration_separates_out_of_scope_and_classify_uses_what_is_stored(tmp_path, store) -> None:
    centres = unit_vectors(3, seed=5)
    collection, _ = registry(tmp_path, store=store).create("intents")
    for c, centre in enumerate(centres):
        items = [Item(f"{c}-{i}", "", {"label": f"intent{c}"}) for i in range(30)]
        collection.upsert(items, near(centre, 30, 0.05, c))
    in_scope = np.concatenate([near(centre, 10, 0.05, 10 + c) for c, centre in enumerate(centres)])
    labels = [f"intent{c}" for c in range(3) for _ in range(10)]
    far = unit_vectors(20, seed=99)
    result = calibrate(collection, np.concatenate([in_scope, far]), labels + [None] * 20, "label", 5)
    assert result.oos_recall >= 0.9 and result.oos_precision >= 0.9 and result.in_scope_accuracy == 1.0
    assert result.rows == 50 and result.out_of_scope_rows == 20
    collection.set_attributes(result.attributes())
    assert collection.info()["min_score"] == result.min_score
    assert classify(collection, in_scope[0], "label", 5).label == "intent0"
    assert sum(classify(collection, v, "label", 5).label is None for v in far) >= 18
    assert classify(collection, far[0], "label", 5, min_score=-1.0).label is not None  # asked for: no threshold


def test_per_label_thresholds_separate_what_one_threshold_cannot() -> None:
    """Label a's utterances have high support and b's low; out-of-scope ones vote a with middling support: no single
    threshold separates them, one per label does."""
    rng = np.random.default_rng(0)
    n = 40
    voted = np.array([canonical("a")] * n + [canonical("b")] * n + [canonical("a")] * n, dtype=object)
    support = np.concatenate([rng.uniform(0.8, 0.9, n), rng.uniform(0.3, 0.4, n), rng.uniform(0.55, 0.65, n)])
    truth = np.array([canonical("a")] * n + [canonical("b")] * n + [None] * n, dtype=object)
    v = Votes(voted, support, truth)
    single, none = fit(v, per_label=False)
    assert none == {} and measure(v, single, {})["balanced"] < 0.9
    single, chosen = fit(v, per_label=True)
    assert measure(v, single, chosen)["balanced"] == 1.0
    assert 0.65 <= chosen.get(canonical("a"), single) <= 0.8 and chosen.get(canonical("b"), single) <= 0.3


def test_put_stores_a_min_score_that_classify_uses(tmp_path, store, monkeypatch) -> None:
    use_store(monkeypatch, store, tmp_path)
    with TestClient(create_app(Settings(data_dir=tmp_path, api_key=API_KEY))) as client:
        assert client.put("/collections/r", json={"min_score": 0.99}, headers=KEY).json()["min_score"] == 0.99
        items = [{"id": i, "text": t, "metadata": m} for i, t, m in REVIEWS]
        client.post("/collections/r/items", json={"items": items}, headers=KEY)
        query = {"text": "The food was lovely and the waiters kind."}
        assert client.post("/collections/r/classify", json=query).json()["label"] is None
        assert client.post("/collections/r/classify", json={**query, "min_score": 0.0}).json()["label"] == "pos"
        assert client.put("/collections/r", json={"min_score": 0.0}, headers=KEY).status_code == 200
        assert client.post("/collections/r/classify", json=query).json()["label"] == "pos"
        bad = client.put("/collections/r", json={"min_score": "high"}, headers=KEY)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "min_score"


def test_the_cli_calibrates_on_validation_utterances(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    assert (
        main(
            [
                "index",
                "load",
                "reviews",
                str(_jsonl(tmp_path / "train.jsonl", TRAIN)),
                "--label",
                "label",
                "--data-dir",
                str(data),
                "--quiet",
            ]
        )
        == 0
    )
    validation = _jsonl(tmp_path / "val.jsonl", VALIDATION)
    assert main(["index", "calibrate", "reviews", str(validation), "--k", "3", "--data-dir", str(data)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2].startswith("min_score ") and "out-of-scope precision" in printed[-2]
    result = json.loads(printed[-1])
    assert result["rows"] == len(VALIDATION) and result["out_of_scope_rows"] == 3
    stored = registry(data).get("reviews").attributes()
    assert stored["min_score"] == pytest.approx(result["min_score"]) and stored["label_key"] == "label"


TRAIN = [
    ("I want to book a flight to Paris", "travel"),
    ("find me a plane ticket to Rome", "travel"),
    ("reserve a seat on the train to Berlin", "travel"),
    ("what is my account balance", "banking"),
    ("how much money do I have in checking", "banking"),
    ("transfer fifty dollars to savings", "banking"),
    ("set an alarm for seven tomorrow", "alarm"),
    ("wake me up at six thirty", "alarm"),
    ("cancel my morning alarm", "alarm"),
]
VALIDATION = [
    ("book me a flight to London", "travel"),
    ("I need a train ticket to Madrid", "travel"),
    ("show my savings balance", "banking"),
    ("move money into checking", "banking"),
    ("set an alarm for eight", "alarm"),
    ("turn off my alarm", "alarm"),
    ("what is the capital of Mongolia", "oos"),
    ("tell me a joke about penguins", None),
    ("how tall is the eiffel tower", "oos"),
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    return path
