"""The drift routes through the real app and the bundled model: recording, baselines, report, restart, metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.drift.embeddings import SAMPLE_FILE
from service.settings import Settings
from tests.disk_fixtures import fill
from tests.drift_fixtures import set_constants
from tests.gateway_fixtures import client

API_KEY = "drift-test-key-2Kd"
KEY = {"Authorization": f"Bearer {API_KEY}"}
FAST = {"drift_min_samples": 10, "drift_check_every": 5, "drift_window": 200}
PAIRS = [
    ["A man is playing a guitar.", "A man plays the guitar.", 4.8],
    ["A woman is slicing an onion.", "Someone is cutting an onion.", 4.2],
    ["Two dogs run through a snowy field.", "Dogs are running in the snow.", 4.0],
    ["A child is riding a horse.", "A kid rides a pony.", 3.6],
    ["The cat sleeps on the sofa.", "A cat is asleep on a couch.", 4.4],
    ["A man is playing a guitar.", "The stock market fell sharply.", 0.0],
    ["A woman is slicing an onion.", "The train arrived late.", 0.2],
    ["Two dogs run through a snowy field.", "He signed the contract.", 0.0],
    ["A child is riding a horse.", "Interest rates went up.", 0.1],
    ["The cat sleeps on the sofa.", "She is writing a letter.", 0.4],
    ["A plane is taking off.", "An airplane departs.", 4.6],
    ["A plane is taking off.", "A bowl of soup is on the table.", 0.0],
]


def settings(tmp_path: Path) -> dict:
    return {"data_dir": tmp_path, "api_key": API_KEY, **FAST}


def test_similarity_scores_are_recorded_per_stream(tmp_path: Path) -> None:
    with client(**settings(tmp_path)) as c:
        pairs = [p[:2] for p in PAIRS]
        assert c.post("/similarity", json={"pairs": pairs}).status_code == 200
        assert c.post("/similarity", json={"pairs": pairs[:3], "stream": "team-a"}, headers=KEY).status_code == 200
        c.app.state.services.monitor.run_due_checks()  # the worker would, once it has simulated the shift test's limits
        streams = c.get("/drift").json()["streams"]
        assert (streams["similarity"]["n_total"], streams["team-a"]["n_total"]) == (12, 3)
        assert streams["similarity"]["status"] == "ok"  # 12 ≥ min_samples 10: a verdict, not yet confirmed
        assert streams["similarity"]["baseline"]["source"].startswith("model_card:")
        assert set(streams["similarity"]["statistics"]) >= {"ks_pvalue", "linf", "psi", "js", "wasserstein_norm"}
        assert c.get("/drift", params={"stream": "team-a"}).json()["streams"].keys() == {"team-a"}
        assert c.get("/drift", params={"stream": "nope"}).status_code == 404


def test_search_and_classify_feed_their_streams(tmp_path: Path) -> None:
    with client(**settings(tmp_path)) as c:
        assert c.put("/collections/c", headers=KEY).status_code == 201
        items = [{"id": str(i), "text": p[0], "metadata": {"label": str(i % 2)}} for i, p in enumerate(PAIRS[:5])]
        assert c.post("/collections/c/items", json={"items": items}, headers=KEY).status_code == 200
        assert c.post("/collections/c/search", json={"query": "guitar music"}).status_code == 200
        assert c.post("/collections/c/classify", json={"text": "an onion", "k": 3}).status_code == 200
        streams = c.get("/drift").json()["streams"]
        assert (streams["search_top1"]["n_total"], streams["classify_confidence"]["n_total"]) == (1, 1)
        assert c.app.state.services.monitor.labels.seen == 1  # the answer's label reached the per-label ranking
        assert streams["classify_confidence"]["labels"]["reference"]["n"] == 0  # still in its warm-up


def test_baseline_upload_by_scores(tmp_path: Path) -> None:
    with client(**settings(tmp_path)) as c:
        scores = np.linspace(0.1, 0.9, 50).tolist()
        assert c.put("/drift/baseline/similarity", json={"scores": scores}).status_code == 401
        r = c.put("/drift/baseline/similarity", json={"scores": scores, "source": "golden set"}, headers=KEY)
        assert r.status_code == 200
        assert r.json()["baseline"]["n"] == 50 and r.json()["baseline"]["mean"] == 0.5
        shown = c.get("/drift").json()["streams"]["similarity"]
        assert (shown["baseline"]["source"], shown["n_baseline"], shown["status"]) == ("golden set", 50, "pending")


def test_baseline_upload_rejects_bad_bodies(tmp_path: Path) -> None:
    with client(**settings(tmp_path)) as c:
        put = lambda body, stream="similarity": c.put(f"/drift/baseline/{stream}", json=body, headers=KEY)  # noqa: E731
        assert put({}).json()["error"]["field"] == "scores"
        assert put({"scores": [0.1] * 20, "pairs": [p[:2] for p in PAIRS]}).status_code == 422
        assert put({"scores": [0.1, 0.2]}).status_code == 422
        huge = put({"scores": [0.1] * 19 + [1e308]})
        assert huge.status_code == 422 and "1000000" in huge.json()["error"]["message"]
        assert put({"scores": [0.1] * 20}, stream="bad name").status_code == 422
        flag = put({"scores": [0.1] * 19 + [True]})  # a boolean is not the score 1.0
        assert flag.status_code == 422 and flag.json()["error"]["field"].startswith("scores"), flag.text


def test_baseline_upload_by_pairs_scores_them_like_similarity(tmp_path: Path) -> None:
    with client(**settings(tmp_path)) as c:
        r = c.put("/drift/baseline/similarity", json={"pairs": PAIRS}, headers=KEY)
        assert r.status_code == 200
        body = r.json()
        cosines = [x["cosine"] for x in c.post("/similarity", json={"pairs": [p[:2] for p in PAIRS]}).json()["results"]]
        assert body["baseline"]["n"] == len(PAIRS)
        assert body["baseline"]["mean"] == round(float(np.mean(cosines)), 6)
        assert -1.0 <= body["label_spearman"] <= 1.0
        assert body["baseline"]["source"].startswith("pairs:12 scored by ")


def test_report_page_has_an_svg_per_stream(tmp_path: Path) -> None:
    with client(**settings(tmp_path)) as c:
        c.post("/similarity", json={"pairs": [p[:2] for p in PAIRS]})
        r = c.get("/drift/report")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        streams = c.get("/drift").json()["streams"]
        assert r.text.count("<svg") >= len(streams)
        for name in streams:
            assert f'<section id="{name}">' in r.text
        assert "<script" not in r.text


def test_windows_survive_a_restart(tmp_path: Path) -> None:
    with client(**settings(tmp_path)) as c:
        c.post("/similarity", json={"pairs": [p[:2] for p in PAIRS], "stream": "kept"}, headers=KEY)
        c.app.state.services.monitor.run_due_checks()  # the due check done now: nothing left for the checking thread
        before = c.get("/drift", params={"stream": "kept"}).json()["streams"]["kept"]
    with client(**settings(tmp_path)) as c:
        after = c.get("/drift", params={"stream": "kept"}).json()["streams"]["kept"]
    assert (after["n_live"], after["live"], after["status"]) == (before["n_live"], before["live"], before["status"])


def test_metrics_export_drift_gauges(tmp_path: Path) -> None:
    with client(**settings(tmp_path)) as c:
        c.post("/similarity", json={"pairs": [p[:2] for p in PAIRS]})
        deadline = time.monotonic() + 10  # the monitor's own checking thread may hold the stream's check meanwhile
        while True:
            c.app.state.services.monitor.run_due_checks()
            text = c.get("/metrics").text
            if 'o2v_drift_status{stream="similarity"} -1.0' not in text or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert 'o2v_drift_status{stream="similarity"} 0.0' in text
        assert 'o2v_drift_statistic{stream="similarity",test="ks_pvalue"}' in text
        assert 'o2v_drift_threshold{level="drift",test="linf"} 0.1' in text
        assert f'o2v_drift_score_bucket{{le="+Inf",stream="similarity"}} {float(len(PAIRS))}' in text
        assert 'o2v_drift_baseline_cdf{le="1.0",stream="similarity"} 1.0' in text


@pytest.mark.skipif(not (Path(Settings().model_dir) / SAMPLE_FILE).is_file(), reason="no embedding sample")
def test_a_baseline_upload_the_full_disk_refused_changes_nothing(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """507, and the old baseline and the old embedding reference both stay, in memory and after a restart; once
    there is room the same upload takes both. The references are told apart by their size: 24 texts, then 28."""
    other = [[p[1], p[0]] for p in PAIRS] + [["A bird sings at dawn.", "A cat is asleep on a couch."]] * 2
    set_constants(monkeypatch, **SMALL_EMBED_CONSTANTS)
    with client(**settings(small_disk / "data"), **SMALL_EMBED) as c:
        assert c.put("/drift/baseline/similarity", json={"pairs": PAIRS}, headers=KEY).status_code == 200
        before = uploaded(c)
        assert before[1] == 2 * len(PAIRS)
        filler = fill(small_disk)
        answer = c.put("/drift/baseline/similarity", json={"pairs": other}, headers=KEY)
        assert answer.status_code == 507 and "disk is full" in answer.json()["error"]["message"], answer.text
        assert uploaded(c) == before, "a baseline or embedding reference that was not stored is in use"
        filler.unlink()
    with client(**settings(small_disk / "data"), **SMALL_EMBED) as c:
        assert uploaded(c) == before
        assert c.put("/drift/baseline/similarity", json={"pairs": other}, headers=KEY).status_code == 200
        changed = uploaded(c)
    assert changed[0]["n"] == len(other) and changed[1] == 2 * len(other)
    with client(**settings(small_disk / "data"), **SMALL_EMBED) as c:
        assert uploaded(c) == changed


SMALL_EMBED = {"drift_embed_check_every": 10}
SMALL_EMBED_CONSTANTS = {"EMBED_WINDOW": 40, "EMBED_MIN_SAMPLES": 10}


def uploaded(c: TestClient) -> tuple[dict[str, Any], int]:
    """The similarity stream's baseline and the size of its route family's embedding reference, as GET /drift
    shows them."""
    doc = c.get("/drift").json()
    reference = doc["embeddings"]["families"]["similarity"]["reference"]
    assert (reference["kind"], reference["source"]) == ("uploaded", "uploaded:similarity")
    return doc["streams"]["similarity"]["baseline"], reference["n"]
