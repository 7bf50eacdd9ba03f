"""Training: each encoder learns, early stopping stops, seeds repeat, JSON Lines errors name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from service.model.hyperparameters import parse_hyperparameters
from service.object2vec.data import DataError, read_jsonl, with_negatives
from service.object2vec.network import Object2Vec
from service.object2vec.train import ConfigError, EarlyStopping, TrainConfig, align_unseen_tokens, train
from tests.object2vec_fixtures import VOCAB, tiny_config, write_jsonl


def run(tmp_path: Path, config: dict) -> dict:
    return train(TrainConfig.from_dict(config, tmp_path), progress=False)


@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_each_encoder_type_learns(tmp_path: Path, network: str) -> None:
    cfg = tiny_config(tmp_path, network, epochs=4, early_stopping_patience=5)
    log = run(tmp_path, {**cfg, "share_encoders": True})  # the overlap task is symmetric: one encoder learns it fast
    losses = [e["validation"]["loss"] for e in log["epochs"]]
    assert losses[-1] < losses[0] * 0.8, losses
    assert log["epochs"][-1]["train_loss"] < log["epochs"][0]["train_loss"]
    assert (tmp_path / "out" / "checkpoint.pt").exists()
    saved = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert len(saved["validation_scores"]) == 128 and saved["best_epoch"] >= 1


def test_softmax_classification_reports_accuracy(tmp_path: Path) -> None:
    log = run(tmp_path, tiny_config(tmp_path, output_layer="softmax", num_classes=2, epochs=4))
    assert 0.6 < log["validation"]["accuracy"] <= 1.0
    assert "cross_entropy" in log["validation"]


def test_same_seed_same_result(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        runs.append(run(tmp_path / name, tiny_config(tmp_path / name)))
    first, second = runs
    assert [e["train_loss"] for e in first["epochs"]] == [e["train_loss"] for e in second["epochs"]]


def test_early_stopping_rule() -> None:
    stop = EarlyStopping(patience=2, tolerance=0.01)
    assert not stop.step(1.0)
    assert not stop.step(0.95)  # improved by 0.05
    assert not stop.step(0.945)  # 0.005 < tolerance: first epoch without improvement
    assert stop.step(0.944)  # second: stop


def test_early_stopping_compares_consecutive_epochs_like_sagemaker() -> None:
    """SageMaker: the loss must fall by the tolerance "between consecutive epochs"; a loss that wobbles around a
    plateau keeps falling from the epoch before, so only the local 'best' reference stops it."""
    losses = [1.0, 0.90, 0.95, 0.90, 0.95, 0.90]
    sagemaker, best = EarlyStopping(2, 0.01), EarlyStopping(2, 0.01, reference="best")
    assert not any(sagemaker.step(loss) for loss in losses)
    assert [best.step(loss) for loss in losses] == [False, False, False, True, True, True]


def test_early_stopping_stops_training(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, epochs=30, learning_rate=1e-6, early_stopping_patience=1, early_stopping_tolerance=0.1)
    log = run(tmp_path, cfg)
    assert log["stopped_early"] == 2 and len(log["epochs"]) == 2
    cfg["early_stopping"] = False
    cfg["hyperparameters"]["epochs"] = "4"
    assert len(run(tmp_path, cfg)["epochs"]) == 4


def test_pretrained_embeddings_loaded_and_frozen(tmp_path: Path) -> None:
    vocab = {f"tok{i}": i for i in range(VOCAB)}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    lines = [f"tok{i} " + " ".join(str(float(i % 7) / 10 + j / 100) for j in range(16)) for i in range(1, VOCAB)]
    (tmp_path / "vectors.txt").write_text("\n".join(lines) + "\n")
    cfg = tiny_config(
        tmp_path,
        enc0_pretrained_embedding_file="vectors.txt",
        enc0_vocab_file="vocab.json",
        enc0_freeze_pretrained_embedding="True",
    )
    cfg["auxiliary"] = "."
    run(tmp_path, cfg)
    state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=False)["state_dict"]
    table = state["enc0.embedding.weight"]
    assert torch.allclose(table[3], torch.tensor([0.3 + j / 100 for j in range(16)]), atol=1e-6)


def test_unseen_tokens_are_carried_into_the_trained_space() -> None:
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(200, 8, generator=gen)
    start[0] = 0.0
    shift, offset = torch.randn(8, 8, generator=gen), torch.randn(8, generator=gen)
    embedding = torch.nn.Embedding(200, 8, padding_idx=0)
    embedding.weight.data.copy_(start)
    seen = torch.zeros(200, dtype=torch.bool)
    seen[1:150] = True
    embedding.weight.data[seen] = start[seen] @ shift + offset  # training moved the seen rows (here: affinely)
    assert align_unseen_tokens(embedding, start, seen) == 50
    expected = start[150:] @ shift + offset
    assert torch.allclose(embedding.weight.data[150:], expected, rtol=0.03, atol=0.05)  # ridge shrinks a little
    assert not embedding.weight.data[0].any()
    assert align_unseen_tokens(embedding, start, torch.ones(200, dtype=torch.bool)) == 0


def test_enc1_network_enc0_copies_the_architecture_not_the_weights(tmp_path: Path) -> None:
    """AWS: enc1_network=enc0 gives enc1 enc0's network and hyperparameter values, and the two "can't share parameter
    values"; sharing the module is the local share_encoders option."""
    hp = parse_hyperparameters(tiny_config(tmp_path, "hcnn")["hyperparameters"])
    model = Object2Vec(hp)
    assert model.enc1 is not model.enc0 and model.enc1.embedding is not model.enc0.embedding
    assert type(model.enc1) is type(model.enc0)
    assert [p.shape for p in model.enc1.parameters()] == [p.shape for p in model.enc0.parameters()]
    shared = Object2Vec(hp, share_encoders=True)
    assert shared.enc1 is shared.enc0
    cfg = tiny_config(tmp_path, enc1_network="bilstm")
    with pytest.raises(ValueError, match="share_encoders needs enc1_network=enc0"):
        Object2Vec(parse_hyperparameters(cfg["hyperparameters"]), share_encoders=True)
    with pytest.raises(ConfigError, match="share_encoders"):
        TrainConfig.from_dict({**cfg, "share_encoders": True}, tmp_path)


@pytest.mark.parametrize(("share", "tables"), [(True, 1), (False, 2)])
def test_pretrained_tables_and_their_alignment_follow_the_encoders(tmp_path: Path, share: bool, tables: int) -> None:
    """Separate encoders both start from enc0's pretrained table (enc1_network=enc0 copies its settings) and each
    table's untouched rows are aligned; a shared encoder has one table."""
    size = 100  # ids 60..99 never occur in the tiny channels
    vocab = {f"tok{i}": i for i in range(size)}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    lines = [f"tok{i} " + " ".join(str(float(i % 7) / 10 + j / 100) for j in range(16)) for i in range(1, size)]
    (tmp_path / "vectors.txt").write_text("\n".join(lines) + "\n")
    cfg = tiny_config(
        tmp_path,
        epochs=1,
        enc0_vocab_size=size,
        enc0_pretrained_embedding_file="vectors.txt",
        enc0_vocab_file="vocab.json",
        enc0_freeze_pretrained_embedding="False",
    )
    cfg.update(auxiliary=".", align_unseen_tokens=True, share_encoders=share)
    log = run(tmp_path, cfg)
    assert log["aligned_unseen_tokens"] == tables * (size - VOCAB)
    state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=False)
    assert state["share_encoders"] is share
    start = torch.tensor([[0.6 + j / 100 for j in range(16)]])  # tok97's pretrained row
    for side in range(2):
        table = state["state_dict"][f"enc{side}.embedding.weight"]
        assert not torch.allclose(table[97], start, atol=1e-3)  # moved into the trained space
    weights = state["state_dict"]
    assert torch.equal(weights["enc0.embedding.weight"], weights["enc1.embedding.weight"]) is share


def test_row_sparse_and_tied_embeddings(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path,
        enc1_network="pooled_embedding",
        enc1_token_embedding_dim="16",
        tied_token_embedding_weight="True",
        token_embedding_storage_type="row_sparse",
        epochs=2,
    )
    run(tmp_path, cfg)
    model = Object2Vec(parse_hyperparameters(cfg["hyperparameters"]))
    assert model.enc0 is not model.enc1 and model.enc0.embedding is model.enc1.embedding
    cfg["hyperparameters"]["optimizer"] = "rmsprop"
    with pytest.raises(ConfigError, match="row_sparse"):
        run(tmp_path, cfg)
    cfg["hyperparameters"].update(optimizer="adam", enc1_token_embedding_dim="8")
    with pytest.raises(ValueError, match="tied_token_embedding_weight"):
        run(tmp_path, cfg)


def test_negative_sampling_adds_label_zero_pairs() -> None:
    import random

    from service.object2vec.data import PairData

    data = PairData([[1, 2], [3, 4], [5]], [[2], [4], [6]], [1.0, 1.0, 0.0])
    out = with_negatives(data, 3, random.Random(0))
    assert len(out) == 3 + 2 * 3 and out.labels[3:] == [0.0] * 6


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"label": 1, "in0": [1]}', "missing 'in1'"),
        ('{"label": 1, "in0": [1, "x"], "in1": [2]}', "'in0' holds 'x'"),
        ('{"label": 1, "in0": [1], "in1": [999]}', "token id 999 is outside"),
        ('{"label": 1, "in0": [], "in1": [2]}', "non-empty list"),
        ('{"label": 3, "in0": [1], "in1": [2]}', "not a class id"),
        ('{"label": "high", "in0": [1], "in1": [2]}', "finite number"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"label": 0, "in0": [1], "in1": [2]}])
    with open(path, "a") as fh:
        fh.write(line + "\n")
    with pytest.raises(DataError) as err:
        read_jsonl(path, (VOCAB, VOCAB), (10, 10), 2)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_sequences_are_truncated_to_max_seq_len(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "long.jsonl", [{"label": 0.5, "in0": list(range(1, 30)), "in1": [1]}])
    data = read_jsonl(path, (VOCAB, VOCAB), (10, 10), None)
    assert data.in0[0] == list(range(1, 11))


def test_best_epoch_follows_the_watched_metric(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, epochs=5, early_stopping_patience=5)
    cfg["early_stopping_metric"] = "spearman_cosine"
    log = run(tmp_path, cfg)
    spearmans = [e["validation"]["spearman_cosine"] for e in log["epochs"]]
    assert log["best_epoch"] == 1 + spearmans.index(max(spearmans))
    assert log["validation"]["spearman_cosine"] == pytest.approx(max(spearmans), abs=1e-6)


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="align_unseen_tokens"):
        run(tmp_path, {**tiny_config(tmp_path), "align_unseen_tokens": True})  # no pretrained table to start from
    with pytest.raises(ConfigError, match="early_stopping_metric"):
        TrainConfig.from_dict({"channels": {"train": "x"}, "early_stopping_metric": "accuracy"}, tmp_path)
    with pytest.raises(ConfigError, match="unknown config keys"):
        TrainConfig.from_dict({"channels": {"train": "x"}, "l1": 0.1}, tmp_path)
    with pytest.raises(ConfigError, match="'train'"):
        TrainConfig.from_dict({"channels": {}}, tmp_path)


def test_a_config_copied_from_a_tuned_job_trains_and_records_the_ignored_keys(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, epochs=1)
    cfg["hyperparameters"]["_tuning_objective_metric"] = "validation:mean_squared_error"
    log = run(tmp_path, cfg)
    assert log["ignored_hyperparameters"] == {"_tuning_objective_metric": "validation:mean_squared_error"}
    assert "_tuning_objective_metric" not in log["hyperparameters"]
