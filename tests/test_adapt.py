"""Adaptation core: the parent's weights from ONNX, label checks, the stratified split, a seeded fine-tune in a
child process exported atomically with its lineage, and cancellation leaving nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from service.encoders.onnx import OnnxEncoder
from service.model.adaptation import ERROR, RESULT, AdaptRequest, run_in_child
from service.model.labelled import LabelError, Labelled, check_labelled, stratified_split
from service.model.model_dir import ModelDir
from service.settings import DEFAULT_MODEL_DIR
from tests.adapt_fixtures import intents

TWO_EPOCHS = {"epochs": "2", "mini_batch_size": "16"}


def test_recovered_parent_embeds_as_the_served_onnx() -> None:
    import torch

    from service.object2vec.adapt import recover, rotation_of
    from service.text import TextTokenizer

    model = ModelDir.load(DEFAULT_MODEL_DIR)
    rows = model.tokenizer().encode(["book a flight to paris", "what is my balance", "hi"])
    with torch.no_grad():
        torch_vectors = recover(model).enc0(torch.from_numpy(TextTokenizer.pad(rows))).numpy()
    rotation = rotation_of(model)
    assert rotation is not None
    served = OnnxEncoder(model).embed_ids(rows)
    assert np.abs(torch_vectors @ rotation - served).max() < 1e-5


def test_labels_with_one_item_are_named_with_their_counts() -> None:
    data = Labelled(["a", "b", "c", "d"], ["x", "x", "y", "z"])
    with pytest.raises(LabelError) as exc:
        check_labelled(data)
    assert "'y': 1" in str(exc.value) and "'z': 1" in str(exc.value) and "2 labels" in str(exc.value)
    with pytest.raises(LabelError, match="at least 2 labels"):
        check_labelled(Labelled(["a", "b"], ["x", "x"]))


def test_stratified_split_holds_out_every_label_and_is_seeded() -> None:
    data = intents(oos=True)
    train, held = stratified_split(data, 0.34, seed=3)
    assert len(train) + len(held) == len(data)
    assert set(held.labels) == set(data.labels)  # every label, the out-of-scope one too, is held out
    assert set(train.labels) == set(data.labels)  # and keeps items to train on
    assert not set(train.texts) & set(held.texts)
    assert stratified_split(data, 0.34, seed=3)[1].texts == held.texts
    assert stratified_split(data, 0.34, seed=4)[1].texts != held.texts


def _adapt(tmp: Path, name: str, seed: int = 0) -> tuple[Path, dict]:
    request = AdaptRequest(
        name=name,
        parent=DEFAULT_MODEL_DIR,
        train=intents(oos=True),
        held_out_fraction=0.34,
        hyperparameters=TWO_EPOCHS,
        options={"seed": seed, "threads": 1},
        source="tests/adapt_fixtures.py",
    )
    out = tmp / "models" / name
    out.parent.mkdir(exist_ok=True)
    cost = run_in_child(request, out, tmp / f"job-{name}", niceness=0)
    return out, cost


def test_adapted_model_directory_has_lineage_and_a_seed_gives_the_same_model(tmp_path: Path) -> None:
    first, cost = _adapt(tmp_path, "first")
    second, _ = _adapt(tmp_path, "second")
    assert cost["peak_rss_mib"] > 0 and cost["model"] == "first"
    card = json.loads((first / "model_card.json").read_text())
    lineage = card["lineage"]
    assert lineage["parent"] == "object2vec-sts-384"
    assert lineage["data"]["sha256"] == intents(oos=True).sha256()
    assert lineage["data"]["labels"] == 3 and lineage["data"]["oos_label"] == "oos"
    assert card["hyperparameters"]["epochs"] == "2" and card["hyperparameters"]["dropout"] == "0.1"
    assert len(card["training"]["history"]) == 2 and "knn_accuracy" in card["training"]["history"][0]["validation"]
    evaluation = card["evaluation"]
    assert {"parent", "adapted", "sts_dev_spearman"} <= set(evaluation)
    assert "oos_recall" in evaluation["adapted"]
    assert card["encoder"]["rotation"]["kind"] == "pca"
    texts = intents().texts
    a = OnnxEncoder(ModelDir.load(first)).embed_texts(texts)
    b = OnnxEncoder(ModelDir.load(second)).embed_texts(texts)
    np.testing.assert_allclose(a, b, atol=1e-5)  # same seed, same model
    parent = OnnxEncoder(ModelDir.load(DEFAULT_MODEL_DIR)).embed_texts(texts)
    assert np.abs(a - parent).max() > 1e-3  # it trained
    assert [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".")] == []


def test_a_cancelled_job_writes_no_model(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "cancel").touch()  # seen at the first progress report
    with pytest.raises(RuntimeError, match="cancelled"):
        run_in_child(
            AdaptRequest("gone", DEFAULT_MODEL_DIR, intents(), hyperparameters=TWO_EPOCHS), tmp_path / "gone", job, 0
        )
    assert json.loads((job / ERROR).read_text())["status"] == "cancelled"
    assert not (job / RESULT).exists()
    assert list(tmp_path.iterdir()) == [job]  # no model, no partial folder


def test_object2vec_pairs_as_text_train_a_model_watched_by_held_out_spearman(tmp_path: Path) -> None:
    texts = intents()
    pairs = [
        (a, b, 1.0 if la == lb else 0.0)
        for i, (a, la) in enumerate(zip(texts.texts, texts.labels, strict=True))
        for b, lb in list(zip(texts.texts, texts.labels, strict=True))[i + 1 :: 4]
    ]
    request = AdaptRequest(
        "pairs", DEFAULT_MODEL_DIR, Labelled([], []), pairs=pairs, hyperparameters=TWO_EPOCHS, held_out_fraction=0.3
    )
    result = run_in_child(request, tmp_path / "pairs", tmp_path / "job", niceness=0)
    assert set(result["evaluation"]["adapted"]) == {"spearman_cosine"}
    card = json.loads((tmp_path / "pairs" / "model_card.json").read_text())
    assert card["lineage"]["data"]["items"] == len(pairs)
    assert [row["epoch"] for row in card["training"]["history"]] == [1, 2]


def test_in_batch_softmax_leaves_out_same_label_negatives_and_rejects_a_bad_temperature() -> None:
    import torch

    from service.object2vec.adapt import AdaptConfig, AdaptError, in_batch_loss

    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.0]])
    # items 0 and 2 share a label: neither is the other's negative, so both are (near) perfectly separated
    assert float(in_batch_loss(a, b, torch.tensor([7, 8, 7]), 0.05)) < 1e-3
    # with distinct labels, in1 of item 2 (close to in0 of item 0) is a hard negative
    assert float(in_batch_loss(a, b, torch.tensor([7, 8, 9]), 0.05)) > 0.1
    assert AdaptConfig.from_options({}, {"in_batch_temperature": 0.1}).options()["in_batch_temperature"] == 0.1
    with pytest.raises(AdaptError, match="in_batch_temperature"):
        AdaptConfig.from_options({}, {"in_batch_temperature": -1})
