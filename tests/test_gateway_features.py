"""Issue 17's gateway features on the real model: /rerank, /tokenize, visible truncation, OpenAI client conventions
(model names, error fields, token-id inputs, the real `openai` package against a real server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.encoders.onnx import OnnxEncoder
from service.encoders.sagemaker import SageMakerEncoder
from service.model.model_dir import ModelDir
from service.settings import Settings
from tests.gateway_fixtures import TEXTS, client, metric, model_copy, onnx_encoder
from tests.sagemaker_stub import StubSageMaker
from tests.server_process import ServerProcess

QUERY = "A man plays the guitar."
DOCS = ["A woman is slicing an onion.", "A man is playing a guitar.", "Two dogs run through a snowy field."]
LONG = "word " * 300  # 300 tokens, the model reads 128


@pytest.fixture(scope="module")
def http():
    with client() as c:
        yield c


def pair_scores(http, query: str, docs: list[str]) -> list[float]:
    answer = http.post("/similarity", json={"pairs": [[query, d] for d in docs]})
    return [r["score"] for r in answer.json()["results"]]


# 1. /rerank


def test_rerank_orders_by_the_object2vec_score_of_similarity(http) -> None:
    answer = http.post("/rerank", json={"query": QUERY, "documents": DOCS})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scorer"] == "object2vec" and body["model"] == onnx_encoder().name
    expected = pair_scores(http, QUERY, DOCS)
    assert [r["index"] for r in body["results"]] == sorted(range(3), key=lambda i: -expected[i])
    assert body["results"][0]["index"] == 1 and "text" not in body["results"][0]
    np.testing.assert_allclose([r["score"] for r in body["results"]], sorted(expected, reverse=True), atol=1e-6)
    assert all(r["relevance_score"] == r["score"] for r in body["results"])
    tei = http.post("/rerank", json={"query": QUERY, "texts": DOCS}).json()  # TEI's request: TEI's bare list
    assert [(r["index"], r["score"]) for r in tei] == [(r["index"], r["score"]) for r in body["results"]]


def test_rerank_takes_coheres_documents_top_n_and_returns_documents(http) -> None:
    body = {"query": QUERY, "documents": DOCS, "top_n": 2, "return_documents": True, "model": onnx_encoder().name}
    results = http.post("/rerank", json=body).json()["results"]
    assert (results[0]["index"], results[0]["text"]) == (1, DOCS[1]) and len(results) == 2
    assert results[0]["document"] == DOCS[1]  # Infinity's string on /rerank (litellm's infinity/ reads one)
    cohere = http.post("/v2/rerank", json=body).json()["results"]  # Cohere's object on Cohere's paths
    assert cohere[0]["document"] == {"text": DOCS[1]} and cohere[0]["relevance_score"] == results[0]["score"]
    tei = http.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True, "raw_scores": True})
    assert tei.json()[0]["text"] == DOCS[1]
    assert [r["score"] for r in tei.json()][:2] == [r["score"] for r in results]  # regression: raw already


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": QUERY}, "texts"),
        ({"query": QUERY, "texts": DOCS, "documents": DOCS}, "texts"),
        ({"query": QUERY, "texts": DOCS, "top_n": 0}, "top_n"),
        ({"query": QUERY, "texts": DOCS, "top_n": True}, "top_n"),  # not read as 1 (schemathesis, ST201)
        ({"query": " ", "texts": DOCS}, "query"),
        ({"query": QUERY, "texts": []}, "texts"),
    ],
)
def test_rerank_refusals_name_the_field(http, body, field) -> None:
    answer = http.post("/rerank", json=body)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == field, answer.text


def test_rerank_falls_back_to_cosine_without_a_scorer(tmp_path: Path) -> None:
    encoder = OnnxEncoder(ModelDir.load(model_copy(tmp_path, without=("scorer.onnx",))), intra_op_threads=1)
    with client(encoder) as c:
        body = c.post("/rerank", json={"query": QUERY, "documents": DOCS}).json()
        similarity = c.post("/similarity", json={"pairs": [[QUERY, d] for d in DOCS]}).json()
    cosines = [r["cosine"] for r in similarity["results"]]
    assert body["scorer"] == "cosine"
    np.testing.assert_allclose([r["score"] for r in body["results"]], sorted(cosines, reverse=True), atol=1e-5)


def test_rerank_on_sagemaker_scores_pairs_as_in0_in1_instances(monkeypatch, tmp_path: Path) -> None:
    """Real boto3 to the loopback InvokeEndpoint stand-in: one pairs request (in0 + in1 per instance)."""
    nowhere = str(tmp_path / "none")
    aws = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_EC2_METADATA_DISABLED": "true"}
    for name, value in {**aws, "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere}.items():
        monkeypatch.setenv(name, value)
    with StubSageMaker(onnx_encoder()) as stub:
        settings = Settings(backend="sagemaker", sagemaker_endpoint="o2v-test", sagemaker_endpoint_url=stub.url)
        with client(SageMakerEncoder.from_settings(settings), backend="sagemaker") as c:
            stub.seen.clear()
            body = c.post("/rerank", json={"query": QUERY, "documents": DOCS}).json()
        pairs = [seen for seen in stub.seen if seen.inputs == {("in0", "in1")}]
        assert len(pairs) == 1 and len(pairs[0].instances) == len(DOCS)
    with client() as c:
        expected = c.post("/rerank", json={"query": QUERY, "documents": DOCS}).json()
    assert body["scorer"] == "object2vec"
    assert [r["index"] for r in body["results"]] == [r["index"] for r in expected["results"]]
    np.testing.assert_allclose([r["score"] for r in body["results"]], [r["score"] for r in expected["results"]], 1e-4)


# 2. /tokenize


def test_tokenize_gives_tokens_with_spans_and_counts(http) -> None:
    first, long = http.post("/tokenize", json={"inputs": ["Héllo wörld, unbelievably!", LONG]}).json()  # TEI's
    assert http.get("/info").json()["max_input_length"] == 128
    assert [t["text"] for t in first] == ["Héllo", "wörld", ",", "un", "bel", "ie", "va", "bly", "!"]
    assert first[1] == {"id": 2088, "text": "wörld", "start": 6, "stop": 11, "special": False}
    assert len(first) == 9 and len(long) == 300
    ids = onnx_encoder().tokenizer.encode(["Héllo wörld, unbelievably!"])[0]
    assert [t["id"] for t in first] == ids  # what the model embeds


def test_tokenize_one_string_and_special_tokens(http) -> None:
    (result,) = http.post("/tokenize", json={"inputs": "ok", "add_special_tokens": True}).json()
    assert [(t["text"], t["special"]) for t in result] == [("[CLS]", True), ("ok", False), ("[SEP]", True)]
    assert http.post("/tokenize", json={"inputs": []}).json()["error"]["field"] == "inputs"


# 3. truncation


@pytest.mark.parametrize(("route", "key"), [("/embed", "texts"), ("/v1/embeddings", "input")])
def test_truncate_false_refuses_an_over_long_text_naming_it(http, route, key) -> None:
    answer = http.post(route, json={key: ["short", LONG], "truncate": False})
    assert answer.status_code == (400 if route.startswith("/v1/") else 422)  # OpenAI's 400 for an invalid request
    error = answer.json()["error"]
    assert error["field"] == f"{key}[1]" and "300 tokens" in error["message"] and "128" in error["message"]
    assert http.post(route, json={key: ["short"], "truncate": False}).status_code == 200


def test_answers_count_truncated_inputs_and_left_keeps_the_end(http) -> None:
    head, tail = "alpha " * 200 + "omega", "omega"
    right = http.post("/embed", json={"texts": [head, "short"]})
    assert right.headers["X-Truncated-Inputs"] == "1" and right.json()["truncated"] == 1
    left = http.post("/embed", json={"texts": [head], "truncation_direction": "left"}).json()["embeddings"][0]
    ids = onnx_encoder().tokenizer.encode_counted([head], "left").rows[0]
    assert ids[-1] == onnx_encoder().tokenizer.encode([tail])[0][-1]
    expected = onnx_encoder().embed_ids([ids])[0]
    np.testing.assert_allclose(left, expected / np.linalg.norm(expected), atol=1e-5)
    v1 = http.post("/v1/embeddings", json={"input": [head, "a"]})
    assert v1.json()["usage"]["truncated"] == 1 and v1.headers["X-Truncated-Inputs"] == "1"
    assert v1.json()["usage"]["prompt_tokens"] == 128 + 1


# 4. OpenAI conventions


def test_unknown_model_is_openais_404_and_aliases_are_accepted() -> None:
    with client(model_aliases=["text-embedding-3-small"]) as c:
        for model in (onnx_encoder().name, "text-embedding-3-small", None):
            assert c.post("/v1/embeddings", json={"input": "hi", "model": model}).status_code == 200, model
        answer = c.post("/v1/embeddings", json={"input": "hi", "model": "text-embedding-ada-002"})
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert {k: error[k] for k in ("type", "param", "code", "field")} == {
        "type": "invalid_request_error", "param": "model", "code": "model_not_found", "field": "model"
    }  # fmt: skip
    assert "text-embedding-3-small" in error["message"]


def test_every_v1_error_carries_param_and_code_and_other_routes_keep_the_house_shape(http) -> None:
    for answer in (http.post("/v1/embeddings", json={"input": []}), http.post("/v1/embeddings", content=b"{")):
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == error["field"] and error["code"]
    assert set(http.post("/embed", json={"texts": []}).json()["error"]) == {"type", "message", "field"}


def test_the_openai_package_talks_to_a_real_server(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    env = {"O2V_DATA_DIR": str(tmp_path), "O2V_ONNX_INTRA_OP_THREADS": "1", "O2V_MODEL_ALIASES": '["my-alias"]'}
    with ServerProcess(env) as server:
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        answer = api.embeddings.create(input=TEXTS[:2], model="my-alias")  # the client asks for base64
        floats = api.embeddings.create(input=TEXTS[:2], model=onnx_encoder().name, encoding_format="float")
        with pytest.raises(openai.NotFoundError) as missing:
            api.embeddings.create(input="hi", model="text-embedding-3-large")
        with pytest.raises(openai.BadRequestError) as ids:  # OpenAI's status and class for an invalid request
            api.embeddings.create(input=[[15339, 100256]], model="my-alias")
        decoded = api.embeddings.create(input=[[15339, 1917]], model="my-alias")  # cl100k_base: "hello world"
        plain = api.embeddings.create(input="hello world", model="my-alias")
    got = np.array([d.embedding for d in answer.data], dtype=np.float32)
    np.testing.assert_allclose(got, np.array([d.embedding for d in floats.data]), atol=1e-6)
    expected = onnx_encoder().embed_texts(TEXTS[:2])
    np.testing.assert_allclose(got, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    assert answer.model == onnx_encoder().name and answer.usage.prompt_tokens > 0
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    assert ids.value.param == "input[0]" and "100256" in ids.value.message and ids.value.code == "validation_error"
    assert decoded.data[0].embedding == plain.data[0].embedding


# 6. dimensions


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize(
    ("route", "key", "out"), [("/v1/embeddings", "input", "data"), ("/embed", "texts", "embeddings")]
)
def test_dimensions_keep_the_first_k_renormalised(http, route, key, out) -> None:
    answer = http.post(route, json={key: TEXTS, "dimensions": 64}).json()
    got = np.array([d["embedding"] for d in answer[out]] if out == "data" else answer[out], dtype=np.float32)
    expected = unit(onnx_encoder().embed_texts(TEXTS)[:, :64])
    assert got.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for bad in (0, onnx_encoder().dim + 1, True, "64"):  # neither is read as a number (schemathesis, ST201)
        error = http.post(route, json={key: TEXTS, "dimensions": bad})
        status = 400 if route.startswith("/v1/") else 422  # OpenAI's 400 for an invalid request
        assert error.status_code == status and error.json()["error"]["field"] == "dimensions", error.text
    whole = http.post(route, json={key: TEXTS, "dimensions": 64.0}).json()  # JSON Schema's integer (ST202)
    assert whole == answer


def test_raw_truncated_embeddings_are_answered(http) -> None:
    """`normalize: false` with `dimensions` answers a column slice as it is (schemathesis found a 500: orjson writes
    only C-contiguous arrays)."""
    answer = http.post("/embed", json={"texts": TEXTS, "dimensions": 1, "normalize": False})
    assert answer.status_code == 200, answer.text
    expected = onnx_encoder().embed_texts(TEXTS)[:, :1]
    np.testing.assert_allclose(np.array(answer.json()["embeddings"], dtype=np.float32), expected, atol=1e-5)


def test_the_bundled_encoder_is_rotated_into_principal_axes() -> None:
    """The card records the rotation, the graph ends in its MatMul, and the leading dimensions carry the most."""
    import onnx

    model = ModelDir.load(onnx_encoder().model.path)
    rotation = model.card["encoder"]["rotation"]
    assert rotation["kind"] == "pca" and rotation["max_cosine_change"] <= 1e-5
    graph = onnx.load(str(model.path / "encoder.onnx")).graph
    assert graph.node[-1].op_type == "MatMul" and graph.node[-1].output[0] == graph.output[0].name
    energy = (unit(onnx_encoder().embed_texts(DOCS * 3 + TEXTS)) ** 2).mean(axis=0)
    assert energy[:64].sum() > 2 * energy[-64:].sum()
    assert (model.path / "encoder.onnx").stat().st_size < 13_000_000  # 384x384 floats on top of 11.8 MB


def test_rotating_keeps_cosines_and_scores_and_refuses_twice(tmp_path: Path) -> None:
    import json
    import shutil

    from service.object2vec.rotation import rotate_model_dir

    folder = shutil.copytree(onnx_encoder().model.path, tmp_path / "model")
    card = json.loads((folder / "model_card.json").read_text())
    card["encoder"]["rotation"] = None  # rotate the bundled model once more, as if it were not
    (folder / "model_card.json").write_text(json.dumps(card))
    texts = [*TEXTS, *DOCS, QUERY]
    before = OnnxEncoder(ModelDir.load(folder), intra_op_threads=1)
    rows = before.tokenizer.encode(texts)
    cos, scores = unit(before.embed_ids(rows)), before.score_ids(rows, rows[::-1])
    record = rotate_model_dir(folder, rows * 40, "test texts")
    after = OnnxEncoder(ModelDir.load(folder), intra_op_threads=1)
    assert record["max_cosine_change"] <= 1e-5
    np.testing.assert_allclose(unit(after.embed_ids(rows)) @ unit(after.embed_ids(rows)).T, cos @ cos.T, atol=1e-5)
    assert not np.allclose(unit(after.embed_ids(rows)), cos, atol=1e-3)  # the values did move
    np.testing.assert_allclose(after.score_ids(rows, rows[::-1]), scores, atol=1e-5)
    assert ModelDir.load(folder).card["files"]["encoder.onnx"] != card["files"]["encoder.onnx"]
    with pytest.raises(ValueError, match="rotated already"):
        rotate_model_dir(folder, rows, "again")


def test_export_rotates_when_it_finds_the_training_channel(tmp_path: Path) -> None:
    import json

    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper

    from service.object2vec.export import export_model
    from service.object2vec.train import TrainConfig, load_checkpoint, train
    from tests.object2vec_fixtures import tiny_config

    train(TrainConfig.from_dict(tiny_config(tmp_path, epochs=1), tmp_path), progress=False)
    out = export_model(tmp_path / "out", tmp_path / "model")
    rotation = json.loads((out / "model_card.json").read_text())["encoder"]["rotation"]
    assert rotation["kind"] == "pca" and "validation channel" in rotation["source"]
    graph = onnx.load(str(out / "encoder.onnx")).graph
    matrix = next(numpy_helper.to_array(t) for t in graph.initializer if t.name == "pca_rotation")
    np.testing.assert_allclose(matrix.T @ matrix, np.eye(len(matrix)), atol=1e-5)
    ids = np.random.default_rng(0).integers(1, 60, size=(6, 9))
    got = ort.InferenceSession(str(out / "encoder.onnx")).run(None, {"input_ids": ids})[0]
    with torch.no_grad():
        raw = load_checkpoint(tmp_path / "out" / "checkpoint.pt").enc0(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(got, raw @ matrix, atol=1e-4)
    unrotated = export_model(tmp_path / "out", tmp_path / "plain", rotate=False)
    assert json.loads((unrotated / "model_card.json").read_text())["encoder"]["rotation"] is None


# 7. embedding cache


def test_the_cache_answers_repeats_with_the_same_vectors_and_counts_them(http) -> None:
    uncached = np.array(http.post("/embed", json={"texts": TEXTS}).json()["embeddings"])
    assert metric(http, "o2v_embed_cache_hits_total") is None  # off by default
    with client(embed_cache_bytes=1_000_000) as cached:
        first = np.array(cached.post("/embed", json={"texts": TEXTS}).json()["embeddings"])
        again = cached.post("/v1/embeddings", json={"input": TEXTS[:2], "dimensions": 32}).json()
        assert metric(cached, "o2v_embed_cache_misses_total") == len(TEXTS)
        assert metric(cached, "o2v_embed_cache_hits_total") == 2
        assert metric(cached, "o2v_embed_cache_entries") == len(TEXTS)
        assert 0 < metric(cached, "o2v_embed_cache_bytes") <= 1_000_000
    np.testing.assert_array_equal(first, uncached)
    np.testing.assert_allclose([d["embedding"] for d in again["data"]], unit(uncached[:2, :32]), atol=1e-6)


def test_the_cache_stays_within_its_bytes_evicting_the_least_recently_used() -> None:
    from service.encoders.cache import EmbeddingCache, cache_key

    vector = np.ones(384, dtype=np.float32)
    one = EmbeddingCache.cost(cache_key("in0", [1, 2]), vector)
    cache = EmbeddingCache(max_bytes=3 * one)
    keys = [cache_key("in0", [i, 2]) for i in range(1, 5)]
    for key in keys[:3]:
        cache.put(key, vector)
    assert cache.get(keys[0]) is not None  # now the most recently used
    cache.put(keys[3], vector)
    assert cache.bytes <= 3 * one and len(cache) == 3
    assert cache.get(keys[1]) is None and cache.get(keys[0]) is not None and cache.get(keys[3]) is not None
    assert cache_key("in0", [1, 2]) != cache_key("in1", [1, 2])
    tiny = EmbeddingCache(max_bytes=one - 1)
    tiny.put(keys[0], vector)
    assert len(tiny) == 0 and tiny.bytes == 0


# 8. tracing


def test_spans_follow_a_request_through_tokenize_queue_encoder_and_index(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from service.tracing import with_exporter

    exporter = InMemorySpanExporter()
    app = create_app(Settings(data_dir=tmp_path), onnx_encoder(), tracing=with_exporter(exporter, batch=False))
    with TestClient(app) as c:
        c.post("/embed", json={"texts": TEXTS})
        spans = {s.name: s for s in exporter.get_finished_spans()}
        assert {"POST /embed", "tokenize", "queue", "encoder"} <= set(spans)
        request = spans["POST /embed"]
        assert all(spans[n].parent.span_id == request.context.span_id for n in ("tokenize", "queue", "encoder"))
        assert spans["queue"].end_time <= spans["encoder"].start_time + 1
        assert spans["encoder"].attributes["o2v.rows"] == len(TEXTS)
        assert request.attributes["http.response.status_code"] == 200
        exporter.clear()
        c.put("/collections/docs", json={})
        c.post("/collections/docs/items", json={"items": [{"id": "a", "text": TEXTS[0]}]})
        c.post("/collections/docs/search", json={"query": TEXTS[0]})
        names = [s.name for s in exporter.get_finished_spans()]
        assert "POST /collections/{name}/search" in names and names.count("index") >= 3


def test_tracing_is_off_without_an_otlp_endpoint_and_never_imports_the_sdk(monkeypatch) -> None:
    from service.tracing import OFF, from_environment

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert from_environment() is OFF
    # the API package may come with FastAPI; the SDK and the exporter are what the extra adds
    code = "import sys; from service.api.app import create_app; create_app(); print(any(m.startswith(("
    code += "'opentelemetry.sdk', 'opentelemetry.exporter')) for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    tracing = from_environment()
    assert tracing.enabled
    tracing.shutdown()
