"""bench.intent's typo'd pass (the clean collection and min_score meet the seeded typo copy of the test split), and
its agreement with `o2v eval`."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pytest

import bench.intent as intent
from service import evaluation
from service.evaluation import with_typos

INTENTS = {
    "alarm": ["set an alarm for seven", "wake me up at six with an alarm", "alarm for noon please"],
    "weather": ["what is the weather today", "will it rain tomorrow", "weather forecast for the weekend"],
    "balance": ["what is my bank balance", "how much money is in checking", "show my account balance"],
}
SPLITS = {
    "train": [(t, y) for y, texts in INTENTS.items() for t in texts],
    "val": [("alarm at seven please", "alarm"), ("rain forecast today", "weather"), ("who painted this", "oos")],
    "test": [
        ("set an alarm for noon", "alarm"),
        ("is rain in the forecast", "weather"),
        ("my checking balance please", "balance"),
        ("sing me a song about cats", "oos"),
    ],
}


class BagOfWords:
    """A fixed random vector per word, summed and normalised; records what it was asked to embed."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = [sum(np.random.default_rng(zlib.crc32(w.encode())).normal(size=32) for w in t.split()) for t in texts]
        out = np.array(rows, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_typo_pass_uses_the_seeded_copy_and_reports_the_drop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intent, "read_clinc", lambda split: list(SPLITS[split]))
    embed = BagOfWords()
    row = intent.evaluate("bow", embed, k=3, limit=None, typo_seed=7)
    test_texts = [t for t, _ in SPLITS["test"]]
    assert embed.calls[-2:] == [test_texts, with_typos(test_texts, 7)]  # clean test, then its typo'd copy
    assert row["in_scope_acc"] == 1.0 and row["typo_changed"] == 1.0
    for key in ("in_scope_acc", "in_scope_acc_at_min", "oos_recall"):
        assert row[f"drop_{key}"] == pytest.approx(row[key] - row[f"typo_{key}"], abs=1e-4)
    assert row["train"] == 9 and row["test"] == 4


def test_o2v_eval_and_bench_intent_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """`o2v eval` (exact kNN in memory) and bench.intent (a real collection and the classify route's path) vote and
    choose min_score by one rule, so they report the same numbers on the same splits."""
    monkeypatch.setattr(intent, "read_clinc", lambda split: list(SPLITS[split]))
    monkeypatch.setattr(evaluation, "read_clinc", lambda split: list(SPLITS[split]))
    row = intent.evaluate("bow", BagOfWords(), k=3, limit=None, typo_seed=0)
    scores = evaluation.clinc(BagOfWords(), k=3)
    assert scores["oos_threshold"] == row["min_score"]
    assert scores["clinc_acc"] == row["in_scope_acc"]
    assert scores["clinc_acc_at_threshold"] == row["in_scope_acc_at_min"]
    assert scores["oos_recall"] == row["oos_recall"]
    assert scores["oos_precision"] == row["oos_precision"]
