"""Model pinning from the shell: `o2v index load|search` refuse a collection another model embedded, naming both
models; `o2v index reembed` moves it to the served model, after which they work."""

from __future__ import annotations

import json

import numpy as np

from service.cli import main
from service.index.base import Item
from service.index.fingerprint import model_fingerprint
from tests.gateway_fixtures import onnx_encoder
from tests.index_fixtures import SMALL, registry

OTHER = "other-model@ffffffffffffffff"


def test_the_cli_refuses_another_models_collection_until_it_is_reembedded(tmp_path, capsys) -> None:
    served = model_fingerprint(onnx_encoder())
    reg = registry(tmp_path, SMALL)
    reg.create("c")[0].upsert([Item("a", "the cat sat on the mat", {})], np.eye(384)[:1], model=OTHER)
    reg.close()
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "a dog in the park"}) + "\n")
    data = ["--data-dir", str(tmp_path)]
    for command in (["load", "c", str(rows), "--quiet"], ["search", "c", "a cat"]):
        assert main(["index", *command, *data]) == 2, command
        error = capsys.readouterr().err
        assert OTHER in error and served in error, command
    assert main(["index", "reembed", "c", "--quiet", *data]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == served
    assert main(["index", "load", "c", str(rows), "--quiet", *data]) == 0
    assert main(["index", "search", "c", "a cat", "--top-k", "1", *data]) == 0
    assert "the cat sat on the mat" in capsys.readouterr().out.splitlines()[-1]
