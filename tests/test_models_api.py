"""The model registry over HTTP: models side by side, `model` on the embedding routes, keyed atomic promotion with
rollback, removal rules. One small adapted model (2 epochs on tests/adapt_fixtures.py) is trained once for the module
into the registry of a data directory."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

pytest.importorskip("torch")

from service.api.app import create_app
from service.encoders.onnx import OnnxEncoder
from service.model.adaptation import AdaptRequest, run_in_child
from service.model.model_dir import ModelDir
from service.model.registry import RESERVED_NAMES, ModelConflict, ModelNameError, ModelRegistry
from service.settings import DEFAULT_MODEL_DIR, Settings
from tests.adapt_fixtures import INTENTS, intents
from tests.gateway_fixtures import onnx_encoder

KEY = "models-test-key-8Hq2"
AUTH = {"Authorization": f"Bearer {KEY}"}
BUNDLED = "object2vec-sts-384"
TEXTS = ["will it rain tomorrow", "what is my checking balance"]


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="o2v-models-") as tmp:
        registry = ModelRegistry(Path(tmp), BUNDLED, DEFAULT_MODEL_DIR)
        request = AdaptRequest(
            "intents-v1",
            DEFAULT_MODEL_DIR,
            intents(),
            held_out_fraction=0.34,
            hyperparameters={"epochs": "2", "mini_batch_size": "16"},
            options={"seed": 1},
        )
        run_in_child(request, registry.target("intents-v1"), Path(tmp) / "job", niceness=0)
        yield Path(tmp)


@pytest.fixture()
def http(data_dir: Path) -> Iterator[TestClient]:
    (data_dir / ".o2v" / "models" / "default.json").unlink(missing_ok=True)
    app = create_app(Settings(data_dir=data_dir, api_key=KEY), onnx_encoder())
    with TestClient(app) as client:
        yield client


def _embed(http: TestClient, model: str | None = None) -> np.ndarray:
    body: dict = {"texts": TEXTS} | ({"model": model} if model else {})
    answer = http.post("/embed", json=body)
    assert answer.status_code == 200, answer.text
    return np.array(answer.json()["embeddings"])


def test_models_are_listed_side_by_side_with_lineage(http: TestClient) -> None:
    listed = http.get("/v1/models").json()
    assert listed["object"] == "list"
    by_id = {m["id"]: m for m in listed["data"]}
    assert set(by_id) == {BUNDLED, "intents-v1"}
    assert by_id[BUNDLED]["default"] and not by_id["intents-v1"]["default"]
    one = http.get("/v1/models/intents-v1").json()
    assert one["object"] == "model" and one["kind"] == "adapted" and one["parent"] == BUNDLED
    assert {"parent", "adapted"} <= set(one["evaluation"]) and one["dim"] == 384
    missing = http.get("/v1/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_model_picks_the_encoder_on_every_embedding_route(http: TestClient) -> None:
    adapted = OnnxEncoder(ModelDir.load(http.app.state.services.model_registry.get("intents-v1").path))  # type: ignore[attr-defined]
    expected = adapted.embed_texts(TEXTS)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(_embed(http, "intents-v1"), expected, atol=1e-5)
    assert np.abs(_embed(http) - expected).max() > 1e-3  # the default is still the bundled model
    v1 = http.post("/v1/embeddings", json={"input": TEXTS[0], "model": "intents-v1"}).json()
    assert v1["model"] == "intents-v1"
    np.testing.assert_allclose(v1["data"][0]["embedding"], expected[0], atol=1e-5)
    pairs = {"pairs": [TEXTS], "model": "intents-v1"}
    cosine = http.post("/similarity", json=pairs).json()["results"][0]["cosine"]
    assert cosine == pytest.approx(float(expected[0] @ expected[1]), abs=1e-5)
    ranked = http.post("/rerank", json={"query": TEXTS[0], "documents": TEXTS, "model": "intents-v1"}).json()
    assert ranked["model"] == "intents-v1"  # Cohere's answer names the model; TEI's (`texts`) is a bare list
    unknown = (
        ("/embed", {"texts": ["hi"]}),
        ("/v1/embeddings", {"input": "hi"}),
        ("/similarity", {"pairs": [["a", "b"]]}),
        ("/rerank", {"query": "q", "texts": ["a", "b"]}),
        ("/v2/rerank", {"query": "q", "documents": ["a", "b"]}),  # Cohere's clients' path
    )
    for route, body in unknown:
        answer = http.post(route, json={**body, "model": "nope"})
        error = answer.json()["error"]  # OpenAI's shape on /v1/embeddings: the kind is its `code`
        assert answer.status_code == 404 and "model_not_found" in (error["type"], error.get("code")), route
        assert "intents-v1" in error["message"], route  # it names the models there are


def test_promotion_is_keyed_switches_the_default_and_rolls_back(http: TestClient) -> None:
    before = _embed(http)
    assert http.post("/models/intents-v1/promote").status_code == 401
    promoted = http.post("/models/intents-v1/promote", headers=AUTH)
    assert promoted.status_code == 200 and promoted.json()["previous"] == BUNDLED
    np.testing.assert_allclose(_embed(http), _embed(http, "intents-v1"), atol=1e-6)
    assert {m["id"]: m["default"] for m in http.get("/v1/models").json()["data"]}["intents-v1"]
    assert http.delete("/models/intents-v1", headers=AUTH).status_code == 409  # the default stays
    rollback = http.post(f"/models/{promoted.json()['previous']}/promote", headers=AUTH)
    assert rollback.status_code == 200
    np.testing.assert_allclose(_embed(http), before, atol=1e-6)
    assert http.post("/models/nope/promote", headers=AUTH).status_code == 404
    assert http.delete(f"/models/{BUNDLED}", headers=AUTH).status_code == 409


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _default_routes(http: TestClient, ids: list[list[int]]) -> dict[str, np.ndarray]:
    """What each route that names no model answers for TEXTS (unit vectors; SageMaker's raw ones normalised)."""
    cohere = http.post("/v2/embed", json={"texts": TEXTS, "embedding_types": ["float"]})
    tei_root = http.post("/", json={"inputs": TEXTS})
    instances = {"instances": [{"in0": row} for row in ids]}
    sagemaker = http.post("/invocations", json=instances)
    runtime = http.post("/endpoints/any-name/invocations", json=instances)
    for answer in (cohere, tei_root, sagemaker, runtime):
        assert answer.status_code == 200, answer.text
    return {
        "/v2/embed": np.array(cohere.json()["embeddings"]["float"]),
        "/": np.array(tei_root.json()),
        "/invocations": _unit(np.array([p["embeddings"] for p in sagemaker.json()["predictions"]])),
        "/endpoints/{name}/invocations": _unit(np.array([p["embeddings"] for p in runtime.json()["predictions"]])),
        "/embed": _embed(http),
    }


def test_a_promotion_reaches_every_route_that_names_no_model(http: TestClient) -> None:
    adapted_dir = ModelDir.load(http.app.state.services.model_registry.get("intents-v1").path)  # type: ignore[attr-defined]
    adapted = OnnxEncoder(adapted_dir)
    ids = adapted_dir.tokenizer().encode(TEXTS)
    expected = {"intents-v1": _unit(adapted.embed_ids(ids)), BUNDLED: _unit(onnx_encoder().embed_ids(ids))}
    assert np.abs(expected["intents-v1"] - expected[BUNDLED]).max() > 1e-3  # the test can tell them apart

    def served_by(name: str) -> None:
        for route, vectors in _default_routes(http, ids).items():
            np.testing.assert_allclose(vectors, expected[name], atol=1e-5, err_msg=route)
        similarity = {"inputs": {"source_sentence": TEXTS[0], "sentences": [TEXTS[1]]}}
        cosine = http.post("/", json=similarity).json()[0]
        assert cosine == pytest.approx(float(expected[name][0] @ expected[name][1]), abs=1e-5)
        assert http.get("/info").json()["model_id"] == name
        assert http.get("/readyz").json() == {"status": "ready", "model": name, "backend": "onnx"}
        tokens = http.post("/tokenize", json={"inputs": TEXTS, "add_special_tokens": False}).json()
        assert [[t["id"] for t in row] for row in tokens] == ids  # the vocabulary of the model that embeds
        decoded = http.post("/decode", json={"ids": ids}).json()
        assert [d.lower() for d in decoded] == TEXTS

    served_by(BUNDLED)
    promoted = http.post("/models/intents-v1/promote", headers=AUTH).json()
    served_by("intents-v1")
    named = http.post("/v2/embed", json={"texts": TEXTS, "model": BUNDLED, "embedding_types": ["float"]})
    np.testing.assert_allclose(named.json()["embeddings"]["float"], expected[BUNDLED], atol=1e-5)  # named wins
    http.post(f"/models/{promoted['previous']}/promote", headers=AUTH)
    served_by(BUNDLED)


def test_cohere_embed_picks_the_model_it_names(http: TestClient) -> None:
    body = {"texts": TEXTS, "embedding_types": ["float"]}
    adapted = http.post("/v2/embed", json={**body, "model": "intents-v1"})
    assert adapted.status_code == 200
    np.testing.assert_allclose(adapted.json()["embeddings"]["float"], _embed(http, "intents-v1"), atol=1e-5)
    unknown = http.post("/v2/embed", json={**body, "model": "embed-english-v3.0"})
    error = unknown.json()["error"]
    assert unknown.status_code == 404 and error["type"] == "model_not_found" and error["field"] == "model"
    assert "intents-v1" in error["message"]


def test_the_drift_monitor_follows_the_default_model(http: TestClient) -> None:
    """A promotion is a model change for the monitor, as at a restart: the learned windows start afresh, the
    uploaded baselines stay, the report names the model; a baseline's pairs are scored by the default model."""
    pairs = [["a man plays a guitar", "a man is playing guitar"], ["a dog runs", "the stock market fell"]]
    bundled_name = http.get("/drift").json()["model"]
    uploaded = {"scores": [0.1 * i for i in range(10)], "source": "vetted"}
    assert http.put("/drift/baseline/uploaded", json=uploaded, headers=AUTH).status_code == 200
    for _ in range(3):
        http.post("/similarity", json={"pairs": pairs})
    assert http.get("/drift").json()["streams"]["similarity"]["n_live"] == 6

    http.post("/models/intents-v1/promote", headers=AUTH)
    http.post("/similarity", json={"pairs": pairs[:1]})  # the first request after the promotion
    report = http.get("/drift").json()
    assert report["model"] != bundled_name and report["model"] == ModelDir.load(
        http.app.state.services.model_registry.get("intents-v1").path  # type: ignore[attr-defined]
    ).card.get("name")
    assert report["streams"]["similarity"]["n_live"] == 1  # the old model's scores are gone, the new one's count
    assert report["streams"]["uploaded"]["baseline"]["source"] == "vetted"  # kept: re-upload if the old model scored it
    rescored = http.put("/drift/baseline/pairs", json={"pairs": pairs * 5}, headers=AUTH)
    assert rescored.status_code == 200, rescored.text
    assert "scored by intents-v1" in rescored.json()["baseline"]["source"]
    http.post(f"/models/{BUNDLED}/promote", headers=AUTH)
    http.post("/similarity", json={"pairs": pairs[:1]})
    assert http.get("/drift").json()["model"] == bundled_name
    before = http.get("/drift").json()["streams"]["similarity"]["n_live"]
    named = http.post("/similarity", json={"pairs": pairs, "model": "intents-v1"})
    assert named.status_code == 200 and len(named.json()["results"]) == 2
    assert http.get("/drift").json()["streams"]["similarity"]["n_live"] == before  # not the default's scores


def _reembedded(http: TestClient, collection: str, model: str) -> None:
    started = http.post(f"/collections/{collection}/reembed", json={"model": model}, headers=AUTH)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 60
    while (info := http.get(f"/collections/{collection}").json())["reembed"]["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert info["reembed"]["state"] == "done", info


def test_collection_scores_feed_only_the_drift_of_the_model_that_made_them(http: TestClient) -> None:
    """A collection re-embedded with another model answers with that model's vectors: its search, batch search and
    classify scores stay out of the default model's `search_top1` and `classify_confidence`, while its own classify
    stream (its reference is the collection itself) counts them. A promotion swaps the roles at once."""
    items = [
        {"id": f"{label}-{i}", "text": text, "metadata": {"intent": label}}
        for label, texts in INTENTS.items()
        for i, text in enumerate(texts)
    ]
    for name in ("kept", "moved"):
        assert http.put(f"/collections/{name}", headers=AUTH).status_code == 201
        assert http.post(f"/collections/{name}/items", json={"items": items}, headers=AUTH).status_code == 200
    _reembedded(http, "moved", "intents-v1")

    def counted(collection: str) -> tuple[int, int, int]:
        """What one search, one batch of two and one classify of `collection` add to search_top1,
        classify_confidence and the collection's own classify stream."""

        def totals() -> tuple[int, int, int]:
            report = http.get("/drift").json()
            own = report["classify"].get(f"{collection}/intent", {}).get("n_total", 0)
            streams = report["streams"]
            return streams["search_top1"]["n_total"], streams["classify_confidence"]["n_total"], own

        before = totals()
        query = {"query": "is it raining", "top_k": 1}
        assert http.post(f"/collections/{collection}/search", json=query).status_code == 200
        batch = {"queries": [query, {"query": "what's my balance", "top_k": 1}]}
        assert http.post(f"/collections/{collection}/search/batch", json=batch).status_code == 200
        asked = {"text": "is it raining", "label_key": "intent", "k": 3}
        assert http.post(f"/collections/{collection}/classify", json=asked).status_code == 200
        return tuple(after - was for after, was in zip(totals(), before, strict=True))  # type: ignore[return-value]

    assert counted("kept") == (3, 1, 1)  # embedded by the default (bundled) model
    assert counted("moved") == (0, 0, 1)  # by intents-v1: only the collection's own stream
    watched = http.get("/drift").json()["model"]
    promoted = http.post("/models/intents-v1/promote", headers=AUTH).json()
    assert http.get("/drift").json()["model"] != watched  # the monitor follows at once, before any other request
    assert counted("moved") == (3, 1, 1)
    assert counted("kept") == (0, 0, 1)
    http.post(f"/models/{promoted['previous']}/promote", headers=AUTH)
    for name in ("kept", "moved"):
        assert http.delete(f"/collections/{name}", headers=AUTH).status_code == 204


def test_a_restart_keeps_the_promoted_models_drift_state(data_dir: Path) -> None:
    """The monitor starts on the default model, so what it learned from the promoted model survives a restart."""
    pairs = {"pairs": [["a man plays a guitar", "a man is playing guitar"]] * 4}
    settings = Settings(data_dir=data_dir, api_key=KEY)
    with TestClient(create_app(settings, onnx_encoder())) as first:
        first.post("/models/intents-v1/promote", headers=AUTH)
        first.post("/similarity", json=pairs)
        before = first.get("/drift").json()
    try:
        with TestClient(create_app(settings, onnx_encoder())) as second:
            after = second.get("/drift").json()  # before any request: the monitor was built on the default
    finally:
        (data_dir / ".o2v" / "models" / "default.json").unlink(missing_ok=True)
    assert after["model"] == before["model"] != "object2vec-sts-384"
    assert after["streams"]["similarity"]["n_live"] == before["streams"]["similarity"]["n_live"] == 4


def test_registry_names_taken_and_path_characters_are_refused(data_dir: Path) -> None:
    registry = ModelRegistry(data_dir, BUNDLED, DEFAULT_MODEL_DIR)
    for bad in ("../x", "a/b", "a.b", "", "x" * 65):
        with pytest.raises(ModelNameError, match="must match"):
            registry.target(bad)
    with pytest.raises(ModelNameError, match="reserved"):
        registry.target("adapt")
    for taken in ("intents-v1", BUNDLED):
        with pytest.raises(ModelConflict, match="taken"):
            registry.target(taken)
    partial = data_dir / ".o2v" / "models" / ".partial-half-999999999"
    partial.mkdir()
    (partial / "encoder.onnx").write_bytes(b"half")
    assert [e.name for e in registry.entries()] == [BUNDLED, "intents-v1"]  # a killed export is never a model
    assert not partial.exists()  # and its writer is dead: removed


def test_route_segments_are_reserved_names_and_bad_names_are_refused(http: TestClient) -> None:
    """A model named like a literal segment under /models/ or /v1/models/ would share that route's path (DELETE
    /models/adapt): the registry's reserved names are exactly those segments, and each is a 422 that says why."""
    literal = set()
    for path in http.get("/openapi.json").json()["paths"]:
        for prefix in ("/models/", "/v1/models/"):
            segment = path.removeprefix(prefix).split("/")[0] if path.startswith(prefix) else "{"
            if "{" not in segment:
                literal.add(segment)
    assert literal == RESERVED_NAMES
    for name in sorted(RESERVED_NAMES):  # no other route shares its path: DELETE /models/{name} does not match it
        assert http.options(f"/models/{name}").headers["allow"] == "POST, OPTIONS"
        assert http.delete(f"/models/{name}", headers=AUTH).status_code == 405
    body = {"collection": "anything", "label_key": "intent"}
    for name in sorted(RESERVED_NAMES):
        answer = http.post("/models/adapt", json={**body, "name": name}, headers=AUTH)
        assert answer.status_code == 422 and "reserved" in answer.json()["error"]["message"], answer.text
        assert answer.json()["error"]["field"] == "name"
    for name in ("../x", "a/b", "a.b", "x y"):
        answer = http.post("/models/adapt", json={**body, "name": name}, headers=AUTH)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "name", name
    for name in ("intents-v1", BUNDLED):
        answer = http.post("/models/adapt", json={**body, "name": name}, headers=AUTH)
        assert answer.status_code == 409 and "taken" in answer.json()["error"]["message"], name
    parent = http.post("/models/adapt", json={**body, "name": "fresh", "parent": "nope"}, headers=AUTH)
    assert parent.status_code == 404 and parent.json()["error"]["field"] == "parent"


def _poll(http: TestClient, job: str, until: Callable[[dict], bool], timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = http.get(f"/jobs/{job}").json()
        if until(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job}: {state}")


def test_a_job_killed_mid_epoch_leaves_no_model_and_cannot_be_promoted(http: TestClient, data_dir: Path) -> None:
    """A real job on 720 labelled items, SIGKILLed once its second epoch runs: no model (half-written or not) under
    its name, the job failed, its name refused for promotion (409); a second job while one runs is a 409 too."""
    items = [
        {"id": f"{label}-{i}-{j}", "text": f"{text}, request {j}", "metadata": {"intent": label}}
        for label, texts in INTENTS.items()
        for i, text in enumerate(texts)
        for j in range(40)
    ]
    assert http.put("/collections/killed", headers=AUTH).status_code in (200, 201)
    for start in range(0, len(items), 256):
        batch = {"items": items[start : start + 256]}
        assert http.post("/collections/killed/items", json=batch, headers=AUTH).status_code == 200
    hyperparameters = {"epochs": "30", "mini_batch_size": "16", "early_stopping_patience": "5"}
    body = {"name": "killed-v1", "collection": "killed", "label_key": "intent", "hyperparameters": hyperparameters}
    started = http.post("/models/adapt", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    job = started.json()["job"]
    second = http.post("/models/adapt", json={**body, "name": "second"}, headers=AUTH)
    assert second.status_code == 409 and job in second.json()["error"]["message"]
    running = _poll(http, job, lambda s: s["status"] != "running" or (s["progress"]["epoch"] or 0) >= 1)
    assert running["status"] == "running", running  # killed while it trains, not after
    child = http.app.state.services.adapt_jobs.children[job]  # type: ignore[attr-defined]
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    failed = _poll(http, job, lambda s: s["status"] != "running")
    assert failed["status"] == "failed" and "-9" in failed["error"], failed
    models = data_dir / ".o2v" / "models"
    assert not (models / "killed-v1").exists()
    assert not any(p.name.startswith(".partial-killed-v1") for p in models.iterdir())
    assert "killed-v1" not in {m["id"] for m in http.get("/v1/models").json()["data"]}
    promote = http.post("/models/killed-v1/promote", headers=AUTH)
    assert promote.status_code == 409 and job in promote.json()["error"]["message"], promote.text
    assert http.get("/v1/models/killed-v1").status_code == 404


def test_the_one_job_rule_is_documented(http: TestClient) -> None:
    """A second adapt job while one runs is a 409 (not queued): the OpenAPI answer says so, as docs/model.md does."""
    operation = http.get("/openapi.json").json()["paths"]["/models/adapt"]["post"]
    assert "job is running" in operation["responses"]["409"]["description"]
    promote = http.get("/openapi.json").json()["paths"]["/models/{name}/promote"]["post"]
    assert "did not succeed" in promote["responses"]["409"]["description"]
