"""`o2v`'s dispatch table and its exit codes: a caller's mistake exits 2, a store that does not answer 69 (sysexits'
EX_UNAVAILABLE: the caller can retry, not fix the command), each with its message on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import DOMAINS, build_parser, main

REPO = Path(__file__).resolve().parent.parent
COMMANDS = [
    "train",
    "export",
    "export-embeddings",
    "eval",
    "convert",
    "distill-data",
    "serve",
    "index",
    "drift",
    "tune",
    "datasets",
    "adapt",
    "models",
]


def test_every_command_is_run_by_the_domain_module_that_configured_it() -> None:
    _, owners = build_parser()
    assert list(owners) == COMMANDS
    assert {owners[name].__name__ for name in COMMANDS} == set(DOMAINS)
    assert owners["index"].__name__ == "service.index.commands" and owners["tune"].__name__.startswith(
        "service.object2vec"
    )


def test_an_unreachable_vector_store_exits_69_with_its_message(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    env = {
        **os.environ,
        "O2V_DATA_DIR": str(tmp_path),
        "O2V_VECTOR_STORE": "milvus",
        "O2V_MILVUS_URI": "http://127.0.0.1:9",  # discard port: nothing listens
        "O2V_MILVUS_TIMEOUT_S": "0.5",
    }
    command = [sys.executable, "-m", "service.cli", "index", "list"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 69, done.stderr[-2000:]
    assert "o2v index: error: the vector store did not answer" in done.stderr and done.stdout == ""


def test_a_missing_stream_or_collection_is_the_callers_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["drift", "export", "--stream", "nope", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path)]) == 2
    )
    assert "o2v drift: error: no drift stream named 'nope'" in capsys.readouterr().err
    assert main(["drift", "report", "--stream", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "no drift stream named 'nope'" in capsys.readouterr().err
    assert main(["index", "search", "nope", "x", "--data-dir", str(tmp_path)]) == 2
    assert "o2v index: error: no collection 'nope'" in capsys.readouterr().err
