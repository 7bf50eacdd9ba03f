"""`GET /drift/export/{stream}` and `o2v drift export`: the live window behind a verdict as files; texts only when
O2V_DRIFT_KEEP_TEXTS is on, bounded in count and age, behind the API key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main
from service.drift.texts import TextKeeper
from tests.gateway_fixtures import client

KEY = {"Authorization": "Bearer export-test-key-5Rw"}
TEXTS = ["Koira juoksee nopeasti niityllä.", "A man plays the guitar.", "Der Zug hat Verspätung."]


def test_kept_texts_come_with_their_rates_and_need_the_key(tmp_path: Path) -> None:
    keep = {"drift_keep_texts": True, "drift_keep_texts_max": 2}
    with client(data_dir=tmp_path, api_key="export-test-key-5Rw", **keep) as c:
        assert c.post("/embed", json={"texts": TEXTS}, headers=KEY).status_code == 200
        c.app.state.services.monitor.run_due_checks()
        assert c.get("/drift/export/unseen_token_rate").status_code == 401
        doc = c.get("/drift/export/unseen_token_rate", headers=KEY).json()
        assert c.get("/drift/export/nope", headers=KEY).status_code == 404
    assert [t["text"] for t in doc["texts"]] == TEXTS[1:]  # the newest 2
    assert doc["texts"][1]["unseen_token_rate"] > doc["texts"][0]["unseen_token_rate"]
    assert len(doc["scores"]) == 3 and doc["verdict"]["n_total"] == 3


def test_texts_are_off_by_default(tmp_path: Path) -> None:
    with client(data_dir=tmp_path) as c:
        c.post("/embed", json={"texts": TEXTS})
        c.app.state.services.monitor.run_due_checks()
        assert c.app.state.services.monitor.texts is None
        assert c.get("/drift/export/unseen_token_rate").json()["texts"] == []


def test_kept_texts_expire() -> None:
    now = [1000.0]
    keeper = TextKeeper(10, max_age_s=60, clock=lambda: now[0])
    keeper.keep(["old"], {"unk_rate": [0.0]})
    now[0] += 30
    keeper.keep(["new"], {"unk_rate": [0.5]})
    now[0] += 45
    assert [(t["text"], t["unk_rate"]) for t in keeper.recent()] == [("new", 0.5)]


def test_cli_export_writes_the_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scores = tmp_path / "base.txt"
    scores.write_text("\n".join(str(i / 100) for i in range(40)))
    assert main(["drift", "baseline", "custom", str(scores), "--data-dir", str(tmp_path)]) == 0
    with client(data_dir=tmp_path, api_key="export-test-key-5Rw", drift_min_samples=10, drift_check_every=5) as c:
        pairs = [[f"a cat number {i}", f"a dog number {i}"] for i in range(12)]
        assert c.post("/similarity", json={"pairs": pairs, "stream": "custom"}, headers=KEY).status_code == 200
    capsys.readouterr()
    out = tmp_path / "export"
    assert main(["drift", "export", "--stream", "custom", "--out", str(out), "--data-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "stream": "custom",
        "status": "ok",
        "scores": 12,
        "texts": 0,
        "pairs": 0,
    }
    lines = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and all(-1 <= line["score"] <= 1 for line in lines)
    assert json.loads((out / "verdict.json").read_text())["n_live"] == 12 and not (out / "texts.jsonl").exists()


def test_similarity_pairs_export_as_an_object2vec_channel(tmp_path: Path) -> None:
    """With kept texts, a stream's /similarity pairs come back as records `o2v train` reads (in0/in1 token ids,
    label), the newest `max` pairs of all streams kept; without the setting none are kept."""
    from service.object2vec.data import read_jsonl

    pairs = [[f"a cat number {i}", f"a dog number {i}"] for i in range(5)]
    keep = {"drift_keep_texts": True, "drift_keep_texts_max": 4}
    with client(data_dir=tmp_path, api_key="export-test-key-5Rw", **keep) as c:
        assert c.post("/similarity", json={"pairs": pairs}).status_code == 200
        assert c.post("/similarity", json={"pairs": pairs[:1], "stream": "team"}, headers=KEY).status_code == 200
        doc = c.get("/drift/export/similarity", headers=KEY).json()
        team = c.get("/drift/export/team", headers=KEY).json()
        tokens = c.post("/tokenize", json={"inputs": pairs[4]}).json()
    assert [(p["text0"], p["text1"]) for p in doc["pairs"]] == [tuple(p) for p in pairs[2:]]  # team's is the 4th
    assert [p["label"] for p in doc["pairs"]] == doc["scores"][2:] and doc["texts"] == []
    assert [(p["text0"], p["text1"]) for p in team["pairs"]] == [tuple(pairs[0])]
    ids = [[t["id"] for t in side] for side in tokens]
    assert [doc["pairs"][-1]["in0"], doc["pairs"][-1]["in1"]] == ids
    channel = tmp_path / "pairs.jsonl"
    channel.write_text("".join(json.dumps(p) + "\n" for p in doc["pairs"]))
    data = read_jsonl(channel, (30522, 30522), (64, 64), None)
    assert len(data) == 3 and data.in0[-1] == ids[0]
    with client(data_dir=tmp_path / "off") as c:
        c.post("/similarity", json={"pairs": pairs})
        assert c.app.state.services.monitor.export("similarity")["pairs"] == []
