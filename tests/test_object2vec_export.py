"""ONNX export: encoder and scorer agree with torch within 1e-4, padding never changes an embedding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from service.drift.baseline import card_calibrations
from service.drift.config import DriftConfig
from service.model.hyperparameters import parse_hyperparameters
from service.object2vec.export import export_encoder, export_model, export_scorer
from service.object2vec.network import Object2Vec
from service.object2vec.train import TrainConfig, load_checkpoint, train
from service.settings import DEFAULT_MODEL_DIR, Settings
from tests.object2vec_fixtures import tiny_config

TOKENIZER = DEFAULT_MODEL_DIR / "tokenizer.json"


def random_model(network: str, **extra: str) -> Object2Vec:
    torch.manual_seed(0)
    hp = parse_hyperparameters(
        {
            "enc0_max_seq_len": "20",
            "enc0_vocab_size": "500",
            "enc0_network": network,
            "enc0_token_embedding_dim": "24",
            "enc_dim": "32",
            "enc0_layers": "2",
            "mlp_dim": "16",
            "output_layer": "softmax",
            "num_classes": "3",
            **extra,
        }
    )
    model = Object2Vec(hp).eval()
    with torch.no_grad():  # sequence heads start at zero; make them count
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def random_ids(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 20, size=rows)
    ids = np.zeros((rows, int(lengths.max()) + 3), dtype=np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, 500, size=n)
    return ids


@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_onnx_encoder_matches_torch(tmp_path: Path, network: str) -> None:
    model = random_model(network)
    export_encoder(model.enc0, tmp_path / "encoder.onnx")
    session = ort.InferenceSession(str(tmp_path / "encoder.onnx"))
    for seed, rows in [(1, 1), (2, 7), (3, 33)]:
        ids = random_ids(rows, seed)
        expected = model.enc0(torch.from_numpy(ids)).detach().numpy()
        got = session.run(None, {"input_ids": ids})[0]
        assert got.shape == (rows, 32)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_padding_never_changes_an_embedding(network: str) -> None:
    model = random_model(network)
    ids = random_ids(5, 4)
    wider = np.concatenate([ids, np.zeros((5, 9), dtype=np.int64)], axis=1)
    with torch.no_grad():
        a = model.enc0(torch.from_numpy(ids))
        b = model.enc0(torch.from_numpy(wider))
        alone = model.enc0(torch.from_numpy(ids[:1, : int((ids[0] != 0).sum())]))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(a[:1], alone, atol=1e-5, rtol=0)


def test_onnx_scorer_matches_torch(tmp_path: Path) -> None:
    model = random_model("pooled_embedding", comparator_list="hadamard, concat, abs_diff")
    export_scorer(model, tmp_path / "scorer.onnx")
    session = ort.InferenceSession(str(tmp_path / "scorer.onnx"))
    a, b = torch.randn(6, 32), torch.randn(6, 32)
    expected = torch.softmax(model.scorer(a, b), dim=-1).detach().numpy()
    got = session.run(None, {"emb0": a.numpy(), "emb1": b.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_compact_embedding_tables_stay_close(tmp_path: Path, dtype: str) -> None:
    model = random_model("hcnn")
    export_encoder(model.enc0, tmp_path / "encoder.onnx", dtype)
    ids = random_ids(16, 5)
    got = ort.InferenceSession(str(tmp_path / "encoder.onnx")).run(None, {"input_ids": ids})[0]
    expected = model.enc0(torch.from_numpy(ids)).detach().numpy()
    cos = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() > 0.999


def test_export_writes_a_complete_model_directory(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, epochs=1)
    cfg["tokenizer"] = str(TOKENIZER)
    train(TrainConfig.from_dict(cfg, tmp_path), progress=False)
    out = export_model(tmp_path / "out", tmp_path / "model", "int8", name="tiny")
    names = {p.name for p in out.iterdir()}
    expected = {
        "encoder.onnx",
        "scorer.onnx",
        "tokenizer.json",
        "vocab.json",
        "hyperparameters.json",
        "model_card.json",
    }
    assert expected <= names
    card = json.loads((out / "model_card.json").read_text())
    dist = card["validation_score_distribution"]
    assert dist["n"] == 128 and len(dist["scores"]) == 128 and sum(dist["histogram"]["counts"]) == 128
    assert dist["shift_calibrations"] == card_calibrations(card, DriftConfig.from_settings(Settings()))  # served as is
    assert dist["shift_calibrations"][0]["drift"] > dist["shift_calibrations"][0]["warning"] > 0
    assert card["hyperparameters"]["enc0_network"] == "pooled_embedding" and card["name"] == "tiny"
    assert set(card["files"]) >= {"encoder.onnx", "scorer.onnx"} and "validation" in card["metrics"]
    assert card["channels"]["train"]["sha256"] and card["encoder"]["embedding_dtype"] == "int8"
    hp = json.loads((out / "hyperparameters.json").read_text())
    assert parse_hyperparameters(hp).enc_dim == 16
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab["[PAD]"] == 0 and vocab["the"] == 1996


@pytest.mark.parametrize("share", [True, False])
def test_shared_and_separate_encoders_export_and_reload(tmp_path: Path, share: bool) -> None:
    """enc1_network=enc0 alone is SageMaker's meaning (enc1 gets enc0's architecture, weights of its own: an
    encoder1.onnx); the local share_encoders option makes one module, and the card says which."""
    cfg = {**tiny_config(tmp_path, epochs=1), "share_encoders": share}
    train(TrainConfig.from_dict(cfg, tmp_path), progress=False)
    model = load_checkpoint(tmp_path / "out" / "checkpoint.pt")
    assert (model.enc1 is model.enc0) is share
    out = export_model(tmp_path / "out", tmp_path / "model", rotate=False)  # raw outputs compared with torch's
    assert (out / "encoder1.onnx").exists() is not share
    assert json.loads((out / "model_card.json").read_text())["local_options"]["share_encoders"] is share
    ids = random_ids(6, 9) % 60
    for name, encoder in (("encoder.onnx", model.enc0), ("encoder1.onnx", model.enc1)):
        if (out / name).exists():
            got = ort.InferenceSession(str(out / name)).run(None, {"input_ids": ids})[0]
            np.testing.assert_allclose(got, encoder(torch.from_numpy(ids)).detach().numpy(), atol=1e-4, rtol=0)
    if not share:
        with torch.no_grad():
            assert not torch.allclose(model.enc0(torch.from_numpy(ids)), model.enc1(torch.from_numpy(ids)))


def test_a_checkpoint_without_share_encoders_keeps_its_shared_encoder(tmp_path: Path) -> None:
    cfg = {**tiny_config(tmp_path, epochs=1), "share_encoders": True}
    train(TrainConfig.from_dict(cfg, tmp_path), progress=False)
    state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=False)
    del state["share_encoders"]  # a checkpoint without the flag: enc1_network=enc0 means one shared module
    torch.save(state, tmp_path / "unflagged.pt")
    model = load_checkpoint(tmp_path / "unflagged.pt")
    assert model.enc1 is model.enc0
