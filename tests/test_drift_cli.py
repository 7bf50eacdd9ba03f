"""`o2v drift report` and `o2v drift baseline`: offline on the stored state, and against a real `o2v serve`."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from service.cli import main
from tests.server_process import ServerProcess


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_offline_baseline_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scores = tmp_path / "scores.txt"
    scores.write_text("\n".join(str(i / 100) for i in range(40)))
    out = json.loads(run(capsys, "drift", "baseline", "custom", str(scores), "--data-dir", str(tmp_path)))
    assert out["baseline"]["n"] == 40 and out["baseline"]["source"] == "scores.txt"
    doc = json.loads(run(capsys, "drift", "report", "--json", "--stream", "custom", "--data-dir", str(tmp_path)))
    assert doc["streams"]["custom"]["n_baseline"] == 40
    assert "custom" in run(capsys, "drift", "report", "--data-dir", str(tmp_path))


def test_pairs_need_a_running_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"pairs": [["a", "b"]] * 10}))
    assert main(["drift", "baseline", "similarity", str(pairs), "--data-dir", str(tmp_path)]) == 2
    assert "--url" in capsys.readouterr().err


def test_against_a_running_service_and_its_saved_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"O2V_DATA_DIR": str(tmp_path), "O2V_API_KEY": "cli-test-key-8Wn3", "O2V_DRIFT_MIN_SAMPLES": "10"}
    pairs = [[f"sentence number {i} about cats", f"another sentence {i} about dogs"] for i in range(12)]
    lines = tmp_path / "pairs.jsonl"
    lines.write_text("\n".join(json.dumps({"in0": a, "in1": b, "label": i % 3}) for i, (a, b) in enumerate(pairs)))
    with ServerProcess(env) as server:
        body = json.dumps({"pairs": pairs, "stream": "e2e"}).encode()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer cli-test-key-8Wn3"}
        request = urllib.request.Request(f"{server.url}/similarity", body, headers)
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        url = ["--url", server.url, "--api-key", "cli-test-key-8Wn3"]
        out = json.loads(run(capsys, "drift", "baseline", "e2e", str(lines), *url))
        assert out["baseline"]["n"] == 12 and out["label_spearman"] is not None
        text = run(capsys, "drift", "report", *url)
        assert "e2e" in text and "similarity" in text
        assert main(["drift", "baseline", "e2e", str(lines), "--url", server.url]) == 1  # no key: 401
        assert "401" in capsys.readouterr().err
    doc = json.loads(run(capsys, "drift", "report", "--json", "--stream", "e2e", "--data-dir", str(tmp_path)))
    saved = doc["streams"]["e2e"]
    assert (saved["n_total"], saved["n_baseline"]) == (12, 12)  # written on shutdown, read back offline
