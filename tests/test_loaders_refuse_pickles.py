"""Files a user can hand over are read as data, never run: a checkpoint with a pickle payload is refused before the
payload runs (issue 23, finding 1), and no loader in the service unpickles."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from service.object2vec.export import export_model
from service.object2vec.train import TrainConfig, train
from tests.object2vec_fixtures import tiny_config

SERVICE = Path(__file__).resolve().parents[1] / "service"


class Payload:
    """Unpickling this runs a shell command that leaves `marker` behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    train(TrainConfig.from_dict(tiny_config(tmp, epochs=1), tmp), progress=False)
    return tmp / "out"


def crafted(trained: Path, tmp_path: Path, marker: Path) -> Path:
    """A copy of a real training output whose checkpoint also carries the payload."""
    folder = tmp_path / "crafted"
    folder.mkdir()
    state = torch.load(trained / "checkpoint.pt", weights_only=True)
    torch.save({**state, "config": Payload(marker)}, folder / "checkpoint.pt")
    (folder / "training_log.json").write_text((trained / "training_log.json").read_text())
    return folder


@pytest.mark.parametrize("command", ["export", "export-embeddings"])
def test_a_checkpoint_carrying_a_pickle_payload_is_refused_unrun(trained: Path, tmp_path: Path, command: str) -> None:
    marker = tmp_path / "ran"
    folder = crafted(trained, tmp_path, marker)
    (tmp_path / "vocab.json").write_text(json.dumps({"[PAD]": 0, "a": 1}))
    args = {
        "export": [str(folder), str(tmp_path / "model")],
        "export-embeddings": [str(folder), str(tmp_path / "vocab.json"), str(tmp_path / "tokens.txt")],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", command, *args], capture_output=True, text=True, timeout=300
    )
    assert not marker.exists(), "the checkpoint's payload ran"
    assert done.returncode != 0
    assert "checkpoint.pt" in done.stderr and "refused to unpickle" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_a_checkpoint_train_wrote_still_exports(trained: Path, tmp_path: Path) -> None:
    out = export_model(trained, tmp_path / "model", rotate=False)
    assert (out / "encoder.onnx").is_file() and (out / "hyperparameters.json").is_file()


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of `name` (`torch.load`, `np.load`) in the tree."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and ast.unparse(node.func) == name]


def keyword(call: ast.Call, name: str) -> object:
    return next((ast.literal_eval(k.value) for k in call.keywords if k.arg == name), None)


def test_no_loader_in_the_service_unpickles() -> None:
    """The class of the problem, not only export: every torch.load is weights_only=True, every np.load says
    allow_pickle=False, and nothing imports pickle's loaders, joblib or dill."""
    found: list[str] = []
    for path in sorted(SERVICE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(SERVICE.parent)
        found += [
            f"{where}:{c.lineno} torch.load"
            for c in calls(tree, "torch.load")
            if keyword(c, "weights_only") is not True
        ]
        found += [
            f"{where}:{c.lineno} np.load" for c in calls(tree, "np.load") if keyword(c, "allow_pickle") is not False
        ]
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if {"joblib", "dill", "cloudpickle", "shelve"} & {*names, module} or (
                module == "pickle" and {"load", "loads", "Unpickler"} & set(names)
            ):
                found.append(f"{where}:{node.lineno} imports an unpickler")
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("pickle.load", "pickle.loads"):
                found.append(f"{where}:{node.lineno} {ast.unparse(node.func)}")
    assert not found, found
