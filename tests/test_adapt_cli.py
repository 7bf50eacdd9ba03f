"""`o2v adapt` on a collection of a data directory, then `o2v models list|promote|rm` on its registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from service.cli import main
from service.index.base import Item
from service.index.engines.faiss.registry import FaissCollections
from tests.adapt_fixtures import INTENTS
from tests.gateway_fixtures import onnx_encoder


def test_adapt_and_models_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = FaissCollections(tmp_path)
    collection = registry.create("intents")[0]
    items = [Item(f"{label}-{i}", t, {"intent": label}) for label, ts in INTENTS.items() for i, t in enumerate(ts)]
    collection.upsert(items, onnx_encoder().embed_texts([i.text for i in items]))
    registry.close()
    common = ["--data-dir", str(tmp_path)]
    fast = json.dumps({"epochs": "1", "mini_batch_size": "16"})
    args = ["adapt", "intents", "--label-key", "intent", "--name", "cli-model", "--hyperparameters", fast, *common]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["model"] == "cli-model"
    assert main(["adapt", "intents", "--label-key", "topic", "--name", "other", *common]) == 2  # no such labels
    assert "have no 'topic' label" in capsys.readouterr().err
    assert main(["models", "list", *common]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(m["id"], m["default"]) for m in listed] == [("object2vec-sts-384", True), ("cli-model", False)]
    assert main(["models", "promote", "cli-model", *common]) == 0
    assert json.loads(capsys.readouterr().out)["previous"] == "object2vec-sts-384"
    assert main(["models", "rm", "cli-model", *common]) == 2  # the default stays
    assert main(["models", "promote", "object2vec-sts-384", *common]) == 0
    assert main(["models", "rm", "cli-model", *common]) == 0
    assert main(["models", "promote", "cli-model", *common]) == 2


def test_adapt_tune_runs_trials_with_a_progress_bar_and_is_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = FaissCollections(tmp_path)
    collection = registry.create("intents")[0]
    items = [Item(f"{label}-{i}", t, {"intent": label}) for label, ts in INTENTS.items() for i, t in enumerate(ts)]
    collection.upsert(items, onnx_encoder().embed_texts([i.text for i in items]))
    registry.close()
    common = ["adapt", "intents", "--label-key", "intent", "--data-dir", str(tmp_path)]
    assert main([*common, "--name", "too-many", "--tune", "21"]) == 2
    assert "--tune must be between 0 and 20" in capsys.readouterr().err
    fast = json.dumps({"epochs": "1", "mini_batch_size": "16"})
    assert main([*common, "--name", "tuned", "--tune", "2", "--hyperparameters", fast]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["model"] == "tuned"
    assert "2/2 [" in err and "trial" in err  # the bar counts trials
    card = json.loads((tmp_path / ".o2v" / "models" / "tuned" / "model_card.json").read_text())
    assert card["tuning"]["trials"] == 2
