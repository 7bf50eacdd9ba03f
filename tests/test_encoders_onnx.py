"""OnnxEncoder on the bundled model directory: shapes, order, determinism, padding invariance, scorer."""

from __future__ import annotations

import numpy as np
import pytest

from service.encoders.base import NoScorer, l2_normalize
from service.encoders.onnx import OnnxEncoder
from service.model.model_dir import ModelDir
from tests.gateway_fixtures import TEXTS, model_copy, onnx_encoder


def test_embeddings_are_float32_rows_of_enc_dim_in_input_order():
    encoder = onnx_encoder()
    vectors = encoder.embed_texts(TEXTS)
    assert vectors.shape == (len(TEXTS), encoder.dim) == (len(TEXTS), encoder.model.hp.enc_dim)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    one_by_one = np.concatenate([encoder.embed_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(vectors, one_by_one, rtol=1e-5, atol=1e-6)


def test_same_input_same_embedding():
    encoder = onnx_encoder()
    np.testing.assert_array_equal(encoder.embed_texts(TEXTS), encoder.embed_texts(TEXTS))


def test_padding_does_not_change_an_embedding():
    encoder = onnx_encoder()
    short = [[2023, 2003, 1037]]
    long = [list(range(1000, 1100))]
    alone = encoder.embed_ids(short)
    beside_long = encoder.embed_ids(short + long)[:1]
    np.testing.assert_allclose(alone, beside_long, rtol=1e-5, atol=1e-6)


def test_chunks_by_padded_tokens_keep_the_order():
    encoder = onnx_encoder()
    small = OnnxEncoder(encoder.model, intra_op_threads=1, max_batch_tokens=8)
    rows = [list(range(5, 5 + n)) for n in (7, 1, 3, 12, 2, 5)]
    np.testing.assert_allclose(small.embed_ids(rows), encoder.embed_ids(rows), rtol=1e-5, atol=1e-6)


def test_ids_past_max_seq_len_are_truncated():
    encoder = onnx_encoder()
    limit = encoder.model.max_seq_len("in0")
    row = [1000 + i for i in range(limit + 40)]
    np.testing.assert_array_equal(encoder.embed_ids([row]), encoder.embed_ids([row[:limit]]))


def test_in1_shares_encoder0_without_encoder1_onnx(tmp_path):
    encoder = onnx_encoder()
    rows = [[2023, 2003], [1037, 3899, 2003]]
    np.testing.assert_array_equal(encoder.embed_ids(rows, "in1"), encoder.embed_ids(rows, "in0"))
    assert encoder.model.encoder_file("in1").name == "encoder.onnx"
    own = ModelDir.load(model_copy(tmp_path, extra={"encoder1.onnx": "encoder.onnx"}))
    assert own.encoder_file("in1").name == "encoder1.onnx"
    assert own.encoder_file("in0").name == "encoder.onnx"


def test_scorer_gives_one_regression_value_per_pair():
    encoder = onnx_encoder()
    assert encoder.has_scorer and encoder.model.hp.output_layer == "mean_squared_error"
    rows = encoder.tokenizer.encode(TEXTS)
    scores = encoder.score_ids(rows, rows[::-1])
    assert scores.shape == (len(TEXTS), 1)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores[1:2], encoder.score_ids(rows[1:2], rows[-2:-1]), rtol=1e-5, atol=1e-6)


def test_model_without_scorer(tmp_path):
    encoder = OnnxEncoder(ModelDir.load(model_copy(tmp_path, without=("scorer.onnx",))), intra_op_threads=1)
    assert not encoder.has_scorer
    with pytest.raises(NoScorer, match=r"no scorer\.onnx"):
        encoder.score_ids([[5]], [[6]])


def test_not_a_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"hyperparameters\.json"):
        ModelDir.load(tmp_path)


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    out = l2_normalize(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
