"""The SageMaker container contract: GET /ping and POST /invocations in Object2Vec's JSON and JSON Lines formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.gateway_fixtures import TEXTS, client, onnx_encoder

ROWS = onnx_encoder().tokenizer.encode(TEXTS)


@pytest.fixture(scope="module")
def http():
    with client() as test_client:
        yield test_client


def test_ping(http):
    assert http.get("/ping").status_code == 200


def test_embeddings_for_in0_only_instances_are_the_raw_encoder_output(http):
    answer = http.post("/invocations", json={"instances": [{"in0": row} for row in ROWS]})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    got = np.array([p["embeddings"] for p in answer.json()["predictions"]])
    np.testing.assert_allclose(got, onnx_encoder().embed_ids(ROWS), rtol=1e-6)


def test_in1_only_instances_use_encoder1(http):
    answer = http.post("/invocations", json={"instances": [{"in1": row} for row in ROWS[:2]]})
    got = np.array([p["embeddings"] for p in answer.json()["predictions"]])
    np.testing.assert_allclose(got, onnx_encoder().embed_ids(ROWS[:2], "in1"), rtol=1e-6)


def test_pairs_get_scores(http):
    instances = [{"in0": a, "in1": b} for a, b in zip(ROWS, ROWS[::-1], strict=True)]
    answer = http.post("/invocations", json={"instances": instances})
    scores = np.array([p["scores"] for p in answer.json()["predictions"]])
    assert scores.shape == (len(ROWS), 1)
    np.testing.assert_allclose(scores, onnx_encoder().score_ids(ROWS, ROWS[::-1]), rtol=1e-5)


def test_mixed_instances_each_get_their_own_answer(http):
    instances = [{"in0": ROWS[0]}, {"in0": ROWS[1], "in1": ROWS[2]}, {"in1": ROWS[3]}, {"in0": ROWS[4], "label": 1}]
    predictions = http.post("/invocations", json={"instances": instances}).json()["predictions"]
    assert [list(p) for p in predictions] == [["embeddings"], ["scores"], ["embeddings"], ["embeddings"]]


def test_json_lines_in_and_out(http):
    body = "".join(json.dumps({"in0": row}) + "\n" for row in ROWS[:3]) + "\n"
    headers = {"content-type": "application/jsonlines", "accept": "application/jsonlines"}
    answer = http.post("/invocations", content=body.encode(), headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/jsonlines"
    lines = [json.loads(line) for line in answer.text.splitlines()]
    np.testing.assert_allclose([x["embeddings"] for x in lines], onnx_encoder().embed_ids(ROWS[:3]), rtol=1e-6)


def test_json_lines_in_json_out(http):
    body = b'{"in0": [5, 6], "in1": [7]}\n{"in0": [8]}'
    answer = http.post("/invocations", content=body, headers={"content-type": "application/jsonlines"})
    assert [list(p) for p in answer.json()["predictions"]] == [["scores"], ["embeddings"]]


def test_a_bad_json_line_is_400(http):
    answer = http.post(
        "/invocations", content=b'{"in0": [5]}\n{oops', headers={"content-type": "application/jsonlines"}
    )
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "body"


def test_infer_max_seqlens_truncates(http):
    headers = {"content-type": "application/json; infer_max_seqlens=2"}
    answer = http.post("/invocations", json={"instances": [{"in0": ROWS[3]}]}, headers=headers)
    got = np.array(answer.json()["predictions"][0]["embeddings"])
    np.testing.assert_allclose(got, onnx_encoder().embed_ids([ROWS[3][:2]])[0], rtol=1e-6)
