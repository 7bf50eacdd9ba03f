"""SageMakerEncoder through real boto3 over real HTTP to a loopback InvokeEndpoint answering from the ONNX model."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from service.encoders import sagemaker as sagemaker_module
from service.encoders.base import BackendUnavailable, BadBackendResponse
from service.encoders.embedder import Embedder
from service.encoders.sagemaker import SageMakerEncoder
from service.settings import Settings
from tests.gateway_fixtures import TEXTS, client, onnx_encoder
from tests.sagemaker_stub import MODEL_ERROR_MESSAGE, StubSageMaker

ROWS = onnx_encoder().tokenizer.encode(TEXTS)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    """Fake credentials and no shared config, so boto3 signs requests and looks nowhere else."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def stub():
    with StubSageMaker(onnx_encoder()) as running:
        yield running


def sagemaker_settings(stub: StubSageMaker, **overrides) -> Settings:
    values = {
        "backend": "sagemaker",
        "sagemaker_endpoint": "o2v-test",
        "sagemaker_endpoint_url": stub.url,
        "sagemaker_max_attempts": 2,
        **overrides,
    }
    return Settings(**values)


def encoder_for(stub: StubSageMaker, **overrides) -> SageMakerEncoder:
    return SageMakerEncoder.from_settings(sagemaker_settings(stub, **overrides))


def test_embeddings_match_the_model_and_use_object2vecs_request(stub):
    vectors = encoder_for(stub).embed_ids(ROWS)
    np.testing.assert_allclose(vectors, onnx_encoder().embed_ids(ROWS), rtol=1e-6, atol=1e-7)
    [seen] = stub.seen
    assert seen.path == "/endpoints/o2v-test/invocations"
    bound = onnx_encoder().model.max_seq_len("in1")
    assert seen.content_type == f"application/json; infer_max_seqlens={max(len(r) for r in ROWS)},{bound}"
    assert seen.accept == "application/json"
    assert seen.instances == [{"in0": row} for row in ROWS]


def test_in1_rows_go_as_in1(stub):
    encoder_for(stub).embed_ids(ROWS[:2], "in1")
    assert stub.seen[0].instances == [{"in1": row} for row in ROWS[:2]]
    bound = onnx_encoder().model.max_seq_len("in0")
    assert stub.seen[0].content_type == f"application/json; infer_max_seqlens={bound},{max(map(len, ROWS[:2]))}"


def test_a_mixed_invocations_request_reaches_the_endpoint_as_one_input_type_per_request(stub):
    """AWS takes pairs or embeddings of one encoder per request; the gateway's lenient /invocations splits a mixed
    batch, and what reaches the endpoint never mixes them."""
    mixed = {"instances": [{"in0": ROWS[0]}, {"in1": ROWS[1]}, {"in0": ROWS[2], "in1": ROWS[3]}, {"in0": ROWS[3]}]}
    with client(encoder_for(stub, sagemaker_max_attempts=1), backend="sagemaker") as http:
        assert http.post("/invocations", json=mixed).status_code == 200
    assert all(len(seen.inputs) == 1 for seen in stub.seen)
    assert {next(iter(seen.inputs)) for seen in stub.seen} == {("in0",), ("in1",), ("in0", "in1")}


def test_pair_scores_use_both_inputs(stub):
    scores = encoder_for(stub).score_ids(ROWS, ROWS[::-1])
    np.testing.assert_allclose(scores, onnx_encoder().score_ids(ROWS, ROWS[::-1]), rtol=1e-6, atol=1e-7)
    assert stub.seen[0].content_type == "application/json"
    assert stub.seen[0].instances[0] == {"in0": ROWS[0], "in1": ROWS[-1]}


def test_batches_are_cut_below_the_body_limit(stub):
    limit = 24_000  # room for two answers of 384 floats
    rows = ROWS * 3
    encoder = encoder_for(stub)
    encoder.max_body_bytes = limit  # INVOKE_ENDPOINT_MAX_BYTES is 6 MiB: a small limit cuts these few rows
    vectors = encoder.embed_ids(rows)
    np.testing.assert_allclose(vectors, onnx_encoder().embed_ids(rows), rtol=1e-6, atol=1e-7)
    assert len(stub.seen) == 8
    assert all(len(seen.body) <= limit for seen in stub.seen)
    assert [x for seen in stub.seen for x in seen.instances] == [{"in0": row} for row in rows]


def test_long_rows_are_truncated_to_the_models_max_seq_len(stub):
    limit = onnx_encoder().model.max_seq_len("in0")
    encoder_for(stub).embed_ids([list(range(1000, 1000 + limit + 50))])
    assert len(stub.seen[0].instances[0]["in0"]) == limit
    assert stub.seen[0].content_type.endswith(f"infer_max_seqlens={limit},{onnx_encoder().model.max_seq_len('in1')}")


@pytest.mark.parametrize("failure", ["throttle", "internal", "unavailable"])
def test_retryable_failures_are_retried(stub, failure):
    stub.script.append(failure)
    vectors = encoder_for(stub).embed_ids(ROWS[:1])
    assert vectors.shape == (1, 384)
    assert len(stub.seen) == 2


@pytest.mark.parametrize(
    ("failure", "attempts"),
    [("throttle", 2), ("unavailable", 2), ("internal", 2), ("not_ready", 1)],
)
def test_failures_that_persist_become_backend_unavailable(stub, failure, attempts):
    """Throttling (HTTP 400 on AWS), a model still loading (429), an unavailable or failing service (503, 500):
    states that pass, so our caller gets 503 with Retry-After once botocore's retries are spent."""
    stub.always = failure
    with pytest.raises(BackendUnavailable) as caught:
        encoder_for(stub).embed_ids(ROWS[:1])
    assert caught.value.status == 503
    assert "o2v-test" in caught.value.message
    assert len(stub.seen) == attempts


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        ("model_error", ["ModelError", MODEL_ERROR_MESSAGE, "the model answered 500: 'model crashed'", "log-group"]),
        ("validation", ["ValidationError", "Endpoint o2v-test of account 123456789012 not found."]),
        ("dependency", ["InternalDependencyException", "An internal dependency failed."]),
    ],
)
def test_errors_a_retry_does_not_cure_are_bad_gateway_with_the_endpoints_message(stub, failure, says):
    stub.always = failure
    with pytest.raises(BadBackendResponse) as caught:
        encoder_for(stub).embed_ids(ROWS[:1])
    assert caught.value.status == 502 and len(stub.seen) == 1
    assert all(part in caught.value.message for part in says), caught.value.message


def test_slow_answers_time_out(stub, monkeypatch):
    stub.always = "slow"
    stub.delay_s = 1.5
    monkeypatch.setattr(sagemaker_module, "READ_TIMEOUT_S", 0.3)  # SageMaker's 70 s, scaled down
    with pytest.raises(BackendUnavailable, match="timeout"):
        encoder_for(stub, sagemaker_max_attempts=1).embed_ids(ROWS[:1])


def test_unreachable_endpoint(stub):
    stub.__exit__()
    with pytest.raises(BackendUnavailable, match="o2v-test"):
        encoder_for(stub, sagemaker_max_attempts=1).embed_ids(ROWS[:1])


def test_missing_credentials(stub, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(BackendUnavailable, match="credentials"):
        encoder_for(stub).embed_ids(ROWS[:1])


@pytest.mark.parametrize("answer", ["malformed", "wrong_count", "nan"])
def test_answers_of_the_wrong_shape_are_bad_gateway(stub, answer):
    stub.always = answer
    with pytest.raises(BadBackendResponse) as caught:
        encoder_for(stub).embed_ids(ROWS[:2])
    assert caught.value.status == 502
    assert len(stub.seen) == 1


def test_the_endpoints_model_defines_the_width_and_it_must_not_change(stub):
    """AWS: the embedding length follows the endpoint's encoder, not our model directory's enc_dim; the first answer
    fixes it, and a later answer of another width would mix two models' vectors."""
    encoder = encoder_for(stub)
    stub.always = "wrong_dim"  # an endpoint whose model embeds in 3 dimensions
    assert encoder.embed_ids(ROWS[:2]).shape == (2, 3) and encoder.dim == 3
    assert encoder.embed_ids(ROWS[:1], "in1").shape == (1, 3)
    stub.always = None
    with pytest.raises(BadBackendResponse, match="width 384, its earlier answers 3") as caught:
        encoder.embed_ids(ROWS[:1])
    assert caught.value.status == 502


def test_the_endpoint_name_is_required():
    with pytest.raises(ValueError, match="O2V_SAGEMAKER_ENDPOINT"):
        SageMakerEncoder.from_settings(Settings(backend="sagemaker", sagemaker_endpoint=None))


def test_gateway_on_the_sagemaker_backend(stub):
    encoder = encoder_for(stub, sagemaker_max_attempts=1)
    with client(encoder, backend="sagemaker") as http:
        ok = http.post("/v1/embeddings", json={"input": TEXTS[:2]})
        assert ok.status_code == 200
        got = np.array([d["embedding"] for d in ok.json()["data"]])
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        similarity = http.post("/similarity", json={"pairs": [TEXTS[:2]]}).json()["results"][0]
        assert similarity["score"] is not None
        assert http.get("/readyz").status_code == 200

        stub.always = "throttle"
        throttled = http.post("/embed", json={"texts": ["x"]})
        assert throttled.status_code == 503
        assert throttled.headers["retry-after"] == "1"
        assert throttled.json()["error"]["type"] == "backend_unavailable"
        not_ready = http.get("/readyz")
        assert not_ready.status_code == 503 and "retry-after" in not_ready.headers

        stub.always = "malformed"
        bad = http.post("/embed", json={"texts": ["x"]})
        assert bad.status_code == 502
        assert json.loads(bad.text)["error"]["type"] == "bad_gateway"


def test_a_readiness_probe_does_not_wait_for_a_slow_endpoint(stub):
    stub.always = "slow"
    embedder = Embedder(encoder_for(stub, sagemaker_max_attempts=1), Settings())
    with pytest.raises(BackendUnavailable, match=r"did not answer in 0\.2 s"):
        asyncio.run(embedder.check(timeout_s=0.2))
