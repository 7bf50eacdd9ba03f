"""Vocabulary streams: texts in another language raise `unseen_token_rate` to drift against the validation texts'
rates; ordinary English stays ok; every tokenized request reaches the streams off the request path."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from service.datasets import read_sts
from service.drift import DriftMonitor
from service.drift.tokens import RATES_FILE, TRAINED_FILE, TokenModel, TokenRates, trained_mask
from service.model.model_dir import ModelDir
from service.settings import Settings
from tests.drift_fixtures import card, config
from tests.gateway_fixtures import client
from tests.public_data_fixtures import STS_SIZES

MODEL = ModelDir.load(Settings().model_dir)
CFG = config(window=600, min_samples=100, check_every=25)
PHRASES = [  # Russian, Greek, Japanese: scripts whose WordPiece rows the English corpus never trained
    "Собака быстро бежит",
    "по красивому лугу",
    "Поезд опаздывает",
    "Η γάτα κοιμάται",
    "στον καναπέ",
    "猫はソファで寝ています",
    "明日は雨が降ります",
]


def foreign(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(PHRASES)} {rng.choice(PHRASES)}." for _ in range(n)]


def token_monitor() -> DriftMonitor:
    tokenizer = MODEL.tokenizer()
    model = TokenModel.load(MODEL.path, tokenizer.vocab_size)
    return DriftMonitor(CFG, card(), tokens=(TokenRates(model.trained, tokenizer.unk_id, tokenizer.max_seq_len), model))


def feed_texts(m: DriftMonitor, texts: list[str], chunk: int = 25) -> list[str]:
    tokenizer, seen = MODEL.tokenizer(), []
    for i in range(0, len(texts), chunk):
        encoded = tokenizer.encode_counted(texts[i : i + chunk])
        m.record_tokens(encoded.rows, encoded.lengths)
        m.run_due_checks()
        seen.append(m.stream_report("unseen_token_rate")["status"])
    return seen


@pytest.mark.skipif(not (MODEL.path / TRAINED_FILE).is_file(), reason="the model dir has no trained_tokens.npy")
def test_another_language_drifts_and_ordinary_english_stays_ok(public_data: Path) -> None:
    """Ordinary English: the stand-in STS-B test sentences (tests/public_data_fixtures.py)."""
    english = [t for p in read_sts("test")[:400] for t in (p.a, p.b)][:600]
    assert len(english) == 600
    m = token_monitor()
    r = m.stream_report("unseen_token_rate")
    assert r["baseline"]["kind"] == "model" and r["baseline"]["source"].endswith(f"{RATES_FILE}:validation texts")
    assert "drift" not in feed_texts(m, english)
    assert m.stream_report("unseen_token_rate")["status"] == "ok"
    assert "drift" in feed_texts(m, foreign(200))
    r = m.stream_report("unseen_token_rate")
    assert r["status"] == "drift" and r["live"]["mean"] > 3 * r["baseline"]["mean"]


def test_rates_of_token_rows() -> None:
    trained = trained_mask([[5, 6], [7]], vocab_size=10)
    assert trained.tolist() == [False] * 5 + [True] * 3 + [False] * 2
    rates = TokenRates(trained, unk_id=1, max_seq_len=3).rates([[5, 9, 1, 0], [6, 7], [42]], [5, 2, 1])
    assert rates["unseen_token_rate"] == pytest.approx([2 / 3, 0.0, 1.0])  # padding ignored; unknown ids unseen
    assert rates["unk_rate"] == pytest.approx([1 / 3, 0.0, 0.0]) and rates["truncated"] == [1.0, 0.0, 0.0]


def test_fewer_unseen_tokens_than_validation_is_not_drift() -> None:
    """Only a rise is a risk: the token streams ignore a fall (here: texts made only of trained tokens)."""
    m = token_monitor()
    rows = [[int(i) for i in np.flatnonzero(m.token_rates.trained)[:8]]] * 25  # type: ignore[union-attr]
    for _ in range(12):
        m.record_tokens(rows, [8] * 25)
        m.run_due_checks()
    r = m.stream_report("unseen_token_rate")
    assert r["live"]["mean"] == 0.0 and r["status"] == "ok"


def test_every_embedded_text_reaches_the_token_streams(tmp_path: Path) -> None:
    with client(data_dir=tmp_path) as c:
        assert c.post("/embed", json={"texts": ["a dog runs", "eine Katze schläft"]}).status_code == 200
        assert c.post("/similarity", json={"pairs": [["a b", "c d"]]}).status_code == 200
        c.app.state.services.monitor.run_due_checks()
        streams = c.get("/drift").json()["streams"]
    assert all(streams[name]["n_total"] == 4 for name in ("unseen_token_rate", "unk_rate", "truncated"))


def test_cli_writes_the_trained_rows_of_a_train_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], public_data: Path
) -> None:
    """The validation rates are those of the (stand-in) STS-B dev sentences, two a pair."""
    for name in ("tokenizer.json", "hyperparameters.json", "model_card.json"):
        shutil.copy(MODEL.path / name, tmp_path / name)
    channel = tmp_path / "train.jsonl"
    channel.write_text('{"in0": [2158, 2003], "in1": [3899], "label": 0.5}\n{"in0": [2158], "in1": [4937]}\n')
    assert main(["drift", "tokens", "--model-dir", str(tmp_path), "--train-channel", str(channel)]) == 0
    assert json.loads(capsys.readouterr().out)["trained_ids"] == 4
    model = TokenModel.load(tmp_path, MODEL.tokenizer().vocab_size)
    assert model.trained is not None and np.flatnonzero(model.trained).tolist() == [2003, 2158, 3899, 4937]
    rates = model.validation["unseen_token_rate"]
    assert len(rates) == 2 * STS_SIZES["dev"] and min(rates) > 0.5


def test_export_writes_the_trained_rows_and_the_validation_rates(tmp_path: Path) -> None:
    """`o2v export` of a checkpoint whose channels are still there: the exact trained rows (ids of the train
    channel) and the validation channel's rates, so a fresh model dir has the unseen-token baseline."""
    from service.evaluation import trained_token_ids
    from service.model.model_dir import ModelDir
    from service.object2vec.export import export_model
    from service.object2vec.train import TrainConfig, train
    from tests.object2vec_fixtures import tiny_config

    cfg = tiny_config(tmp_path, epochs=1)
    cfg["tokenizer"] = str(Path(Settings().model_dir) / "tokenizer.json")
    train(TrainConfig.from_dict(cfg, tmp_path), progress=False)
    out = export_model(tmp_path / "out", tmp_path / "model", name="tiny", rotate=False)
    train_ids = {i for line in (tmp_path / "train.jsonl").read_text().splitlines() for k in ("in0", "in1")
                 for i in json.loads(line)[k]}  # fmt: skip
    vocab_size = len(json.loads((out / "vocab.json").read_text()))
    model = TokenModel.load(out, vocab_size)
    assert model.trained is not None and set(np.flatnonzero(model.trained).tolist()) == train_ids
    assert len(model.validation["unseen_token_rate"]) == 2 * 128  # in0 and in1 of each validation record
    card_tokens = json.loads((out / "model_card.json").read_text())["drift_tokens"]
    assert card_tokens["trained_ids"] == len(train_ids) and card_tokens["source"]["files"] == ["train.jsonl"]
    trained, how = trained_token_ids(ModelDir.load(out))  # bench.quality's coverage reads the same exact rows
    assert trained == train_ids and how.startswith(TRAINED_FILE)
    (tmp_path / "train.jsonl").write_text("")  # not the file training read: no trained rows claimed
    again = export_model(tmp_path / "out", tmp_path / "again", name="tiny", rotate=False)
    assert not (again / TRAINED_FILE).exists() and not (again / RATES_FILE).exists()
