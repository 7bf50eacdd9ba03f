"""The gateway's routes on the bundled ONNX model: embeddings, similarity, health, models, metrics, batching."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi import FastAPI

from service.api.errors import ErrorBody
from service.encoders.embedder import INLINE_TOKENIZE_CHARS
from service.encoders.onnx import OnnxEncoder
from service.model.model_dir import ModelDir
from tests.gateway_fixtures import TEXTS, client, model_copy, onnx_encoder, reported_scores


@pytest.fixture(scope="module")
def http():
    with client() as test_client:
        yield test_client


def vectors(answer) -> np.ndarray:
    return np.array([d["embedding"] for d in answer.json()["data"]], dtype=np.float32)


def test_openai_embeddings(http):
    answer = http.post("/v1/embeddings", json={"input": TEXTS, "model": onnx_encoder().name, "user": "me"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["object"] == "list" and body["model"] == onnx_encoder().name
    assert [d["index"] for d in body["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "embedding" for d in body["data"])
    got = vectors(answer)
    assert got.shape == (len(TEXTS), onnx_encoder().dim)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    tokens = sum(onnx_encoder().tokenizer.count_tokens(TEXTS))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens, "truncated": 0}


def test_one_string_input_is_one_embedding(http):
    one = http.post("/v1/embeddings", json={"input": TEXTS[0]})
    listed = http.post("/v1/embeddings", json={"input": [TEXTS[0]]})
    np.testing.assert_array_equal(vectors(one), vectors(listed))


def test_base64_is_the_little_endian_float32_of_the_floats(http):
    floats = vectors(http.post("/v1/embeddings", json={"input": TEXTS}))
    answer = http.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "base64"})
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in answer.json()["data"]])
    np.testing.assert_array_equal(decoded, floats)


def test_embed_raw_and_normalised(http):
    many = TEXTS * 8  # over INLINE_TOKENIZE_CHARS: tokenized on a worker thread
    assert sum(map(len, many)) > INLINE_TOKENIZE_CHARS
    raw = http.post("/embed", json={"texts": many, "normalize": False}).json()
    assert raw["dim"] == onnx_encoder().dim and raw["model"] == onnx_encoder().name
    np.testing.assert_allclose(np.array(raw["embeddings"]), onnx_encoder().embed_texts(many), rtol=1e-6)
    unit = np.array(http.post("/embed", json={"texts": TEXTS}).json()["embeddings"])
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)


def test_an_embedding_does_not_depend_on_its_batch(http):
    alone = np.array(http.post("/embed", json={"texts": [TEXTS[4]]}).json()["embeddings"])
    batched = np.array(http.post("/embed", json={"texts": [TEXTS[3], TEXTS[4]]}).json()["embeddings"])
    np.testing.assert_allclose(alone[0], batched[1], rtol=1e-5, atol=1e-6)
    again = np.array(http.post("/embed", json={"texts": [TEXTS[4]]}).json()["embeddings"])
    np.testing.assert_array_equal(alone, again)


def test_similarity_cosine_and_object2vec_score(http):
    pairs = [[TEXTS[0], TEXTS[1]], [TEXTS[2], TEXTS[2]], [TEXTS[3], TEXTS[4]]]
    results = http.post("/similarity", json={"pairs": pairs}).json()["results"]
    unit = np.array(http.post("/embed", json={"texts": [t for p in pairs for t in p]}).json()["embeddings"])
    np.testing.assert_allclose([r["cosine"] for r in results], (unit[0::2] * unit[1::2]).sum(axis=1), atol=1e-5)
    assert results[1]["cosine"] == pytest.approx(1.0, abs=1e-5)
    encoder = onnx_encoder()
    rows = encoder.tokenizer.encode([t for p in pairs for t in p])
    expected = encoder.score_ids(rows[0::2], rows[1::2])[:, -1]
    np.testing.assert_allclose([r["score"] for r in results], expected, rtol=1e-5, atol=1e-6)


def test_similarity_score_is_null_without_a_scorer(tmp_path):
    encoder = OnnxEncoder(ModelDir.load(model_copy(tmp_path, without=("scorer.onnx",))), intra_op_threads=1)
    with client(encoder) as http:
        [result] = http.post("/similarity", json={"pairs": [TEXTS[:2]]}).json()["results"]
        assert result["score"] is None and -1.0 <= result["cosine"] <= 1.0
        pair = http.post("/invocations", json={"instances": [{"in0": [5], "in1": [6]}]})
        assert pair.status_code == 422 and "scorer.onnx" in pair.json()["error"]["message"]


def test_similarity_cosines_reach_the_score_observers(http):
    with reported_scores(http.app) as seen:
        http.post("/similarity", json={"pairs": [TEXTS[:2]], "stream": "faq-bot"})
        http.post("/similarity", json={"pairs": [TEXTS[1:3], TEXTS[2:4]]})
    assert [(s, len(v)) for s, v in seen] == [("faq-bot", 1), ("similarity", 2)]


def test_health_readiness_and_models(http):
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready", "model": onnx_encoder().name, "backend": "onnx"}
    [model] = http.get("/v1/models").json()["data"]
    assert model["id"] == onnx_encoder().name and model["object"] == "model"
    assert model["dim"] == 384 and model["max_seq_len"] == 128 and model["scorer"] is True
    assert model["output_layer"] == "mean_squared_error" and "validation" in model["metrics"]


def test_concurrent_requests_share_encoder_calls_and_metrics_show_it():
    with client(batch_max_wait_ms=100.0) as http, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: http.post("/embed", json={"texts": [t]}), TEXTS * 2))
        assert all(a.status_code == 200 for a in answers)
        http.post("/embed", json={"texts": []})
        metrics = http.get("/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if not line.startswith("#"))
    assert float(lines['o2v_http_requests_total{method="POST",route="/embed",status="200"}']) == 10
    assert float(lines['o2v_http_requests_total{method="POST",route="/embed",status="422"}']) == 1
    assert 'o2v_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/embed",status="200"}' in lines
    assert float(lines["o2v_batch_size_sum"]) >= 10  # the warm-up's one row too
    assert float(lines["o2v_batch_size_count"]) < 10  # fewer encoder calls than requests
    assert 'o2v_queue_depth{channel="in0"}' in lines
    assert float(lines['o2v_encoder_duration_seconds_count{op="embed"}']) >= 1


def test_openapi_states_the_limits_of_the_settings():
    with client(max_batch_size=7, max_text_chars=99) as http:
        schema = http.get("/openapi.json").json()["components"]["schemas"]
    texts = schema["EmbedRequest"]["properties"]["texts"]
    assert texts["maxItems"] == 7 and texts["items"]["maxLength"] == 99


CREATE_ERRORS = [("400", "bad request"), ("401", "unauthorized"), ("409", "conflict"), ("422", "validation error")]


def test_openapi_states_error_answers_as_fastapi_states_a_response_model(http):
    """Error statuses reference ErrorBody, whose components read as FastAPI writes them for `{"model": ErrorBody}`."""
    reference = FastAPI()
    reference.get("/x", responses={503: {"model": ErrorBody, "description": "unavailable"}})(lambda: None)
    expected = reference.openapi()
    schema = http.get("/openapi.json").json()
    content = expected["paths"]["/x"]["get"]["responses"]["503"]["content"]
    create = schema["paths"]["/collections/{name}"]["put"]["responses"]
    assert all(create[status] == {"description": why, "content": content} for status, why in CREATE_ERRORS)
    for name in ("ErrorBody", "ErrorDetail"):
        assert schema["components"]["schemas"][name] == expected["components"]["schemas"][name]


class HeldEncoder(OnnxEncoder):
    """The bundled model, but each embedding call waits for `release` (so the queue can be filled on purpose)."""

    def __init__(self) -> None:
        super().__init__(onnx_encoder().model, intra_op_threads=1)
        self.release = threading.Event()
        self.calls = 0

    def embed_ids(self, rows, channel="in0"):
        self.calls += 1
        self.release.wait(10)
        return super().embed_ids(rows, channel)


def test_a_full_queue_is_503_with_retry_after():
    encoder = HeldEncoder()
    encoder.release.set()  # let the start-up warm-up through
    with (
        client(encoder, batch_max_size=1, batch_max_wait_ms=0, queue_max_size=1) as http,
        ThreadPoolExecutor(2) as pool,
    ):
        encoder.release.clear()
        calls = encoder.calls
        held = pool.submit(http.post, "/embed", json={"texts": ["held in the encoder"]})
        while encoder.calls == calls:
            time.sleep(0.005)
        queued = pool.submit(http.post, "/embed", json={"texts": ["waiting in the queue"]})
        while http.app.state.services.embedder.batchers["in0"].depth == 0:
            time.sleep(0.005)
        refused = http.post("/embed", json={"texts": ["one too many"]})
        encoder.release.set()
        assert held.result().status_code == 200 and queued.result().status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "overloaded"
