"""Embedding drift: live embeddings per route family vs the family's own reference (uploaded, or learned from its
first traffic) by the MMD permutation test, and vs the model dir's validation sample as `domain`: traffic of another
domain is reported as such and stays out of `drift`; a change after the family's own traffic drifts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.drift import log_pairs
from service import datasets
from service.api.route_family import route_family
from service.cli import main
from service.datasets import file_sha256, read_sts
from service.drift.config import Limit
from service.drift.embeddings import SAMPLE_FILE, SAMPLE_META, EmbeddingMonitor, load_sample, write_sample
from service.drift.mmd import median_distance, mmd_test, unit_rows
from service.settings import Settings
from tests.drift_fixtures import set_constants
from tests.gateway_fixtures import client, model_copy

EMBED = {"drift_embed_check_every": 50}
EMBED_CONSTANTS = {"EMBED_WINDOW": 200, "EMBED_MIN_SAMPLES": 100}


def test_mmd_pvalue_is_uniformish_under_the_null_and_small_under_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = unit_rows(rng.normal(size=(200, 32)))
    bw = median_distance(ref)
    null = [mmd_test(ref, unit_rows(rng.normal(size=(150, 32))), bw, 100, seed=i)[1] for i in range(40)]
    assert np.mean(np.array(null) < 0.05) <= 0.15  # ≈ 5 %, with room for 40 draws
    shifted = unit_rows(rng.normal(size=(150, 32)) + 1.0 * np.eye(32)[0])
    mmd2, p = mmd_test(ref, shifted, bw, 100)
    assert mmd2 > 0 and p < 0.02


def test_route_families_are_bounded_names() -> None:
    paths = ("/v1/embeddings", "/embed", "/similarity", "/collections/x/search", "/collections/x/items", "/zz")
    assert [route_family(p) for p in paths] == [
        "embeddings",
        "embeddings",
        "similarity",
        "collections",
        "ingest",
        "other",
    ]


def test_log_lines_are_another_domain_and_drift_after_in_domain_traffic(
    tmp_path: Path, public_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The validation sample as `o2v drift sample` writes it, from the (stand-in) STS-B dev sentences. Sentences of
    the same kind, none of them in dev, are `in_domain` and stay ok; a family whose traffic is machine log lines
    from its first request says `other_domain` and is not in drift (its own traffic has not changed); the same log
    lines after the sentences drift. The families are kept apart."""
    model = model_copy(tmp_path, without=(SAMPLE_FILE, SAMPLE_META))
    assert main(["drift", "sample", "--model-dir", str(model), "--n", "400"]) == 0
    dev = {t for p in read_sts("dev") for t in (p.a, p.b)}
    unseen = sorted({t for p in read_sts("test") for t in (p.a, p.b)} - dev)
    sts = [str(t) for t in np.random.default_rng(1).choice(unseen, 300, replace=False)]  # test is ordered by genre
    logs = [t for pair in log_pairs(150, seed=1) for t in pair]
    set_constants(monkeypatch, **EMBED_CONSTANTS)
    with client(data_dir=tmp_path, model_dir=model, **EMBED) as c:
        monitor = c.app.state.services.monitor
        for i in range(0, 300, 50):
            assert c.post("/embed", json={"texts": sts[i : i + 50]}).status_code == 200
            assert c.post("/similarity", json={"pairs": [[a, a] for a in logs[i : i + 50]]}).status_code == 200
            monitor.run_due_checks()
        doc = c.get("/drift").json()["embeddings"]
        assert doc["families"]["embeddings"]["status"] == "ok"
        assert doc["families"]["embeddings"]["domain"]["status"] == "in_domain"
        for i in range(0, 300, 50):
            assert c.post("/embed", json={"texts": logs[i : i + 50]}).status_code == 200
            monitor.run_due_checks()
        doc = c.get("/drift").json()["embeddings"]
        page = c.get("/drift/report").text
        metrics = c.get("/metrics").text
    families = doc["families"]
    assert families["similarity"]["status"] == "ok" and families["similarity"]["domain"]["status"] == "other_domain"
    assert families["similarity"]["reference"]["kind"] == "learned"
    assert families["embeddings"]["status"] == "drift" and families["embeddings"]["pvalue"] <= 0.01
    assert families["embeddings"]["n_total"] == 600 and families["embeddings"]["reference"]["n"] == 200
    assert doc["reference"]["kind"] == "card" and load_sample(model).shape == (400, 384)  # type: ignore[union-attr]
    assert 'id="embeddings"' in page and 'o2v_drift_embedding_status{family="embeddings"} 2.0' in metrics


def test_a_sample_of_another_encoder_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "encoder.onnx").write_bytes(b"model one")
    write_sample(tmp_path, np.eye(4, 8), "four texts")
    assert load_sample(tmp_path) is not None and load_sample(tmp_path).shape == (4, 8)  # type: ignore[union-attr]
    (tmp_path / "encoder.onnx").write_bytes(b"model two, re-exported")
    assert load_sample(tmp_path) is None


def test_an_encoder_rewritten_in_place_is_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder's hash is remembered per file version: a rewrite of the same size within the clock's granularity
    (same inode, same times) is hashed again while it is that recent, and any file that changes size is."""
    encoder = tmp_path / "encoder.onnx"
    encoder.write_bytes(b"model one")
    write_sample(tmp_path, np.eye(4, 8), "four texts")
    assert load_sample(tmp_path) is not None
    encoder.write_bytes(b"model two")
    assert load_sample(tmp_path) is None
    monkeypatch.setattr(datasets, "SETTLED_NS", 0)  # every file counts as settled: its hash is remembered
    write_sample(tmp_path, np.eye(4, 8), "four texts")
    assert load_sample(tmp_path) is not None and file_sha256(encoder) == file_sha256(encoder)
    encoder.write_bytes(b"model three")
    assert load_sample(tmp_path) is None


def test_embedding_windows_survive_a_restart(tmp_path: Path) -> None:
    """The windows, counters and statuses are part of the drift state (int8 rows); a monitor with another sample
    (another model's embedding space) does not take them."""
    from service.drift import DriftMonitor
    from service.drift.store import DriftStore
    from tests.drift_fixtures import card, config

    rng = np.random.default_rng(3)
    sample = unit_rows(rng.normal(size=(200, 32)))
    cfg = config(embed_window=150, embed_min_samples=100, embed_check_every=50)

    def monitor(reference: np.ndarray) -> DriftMonitor:
        return DriftMonitor(cfg, card(), DriftStore(tmp_path), embedding_sample=reference)

    m = monitor(sample)
    m.record_embeddings(unit_rows(rng.normal(size=(150, 32))))  # the family's reference: its first window
    m.run_due_checks()
    for _ in range(4):
        m.record_embeddings(unit_rows(rng.normal(size=(50, 32)) + 3.0 * np.eye(32)[0]))  # beyond its mix floor
        m.run_due_checks()
    before = m.report()["embeddings"]["families"]
    assert before["other"]["status"] == "drift" and before["other"]["n_live"] == 150
    assert before["other"]["reference"]["kind"] == "learned"
    m.close()
    again = monitor(sample)
    assert again.report()["embeddings"]["families"] == before
    window = np.array(again.embeddings.families["other"].vectors, dtype=np.float32)
    kept = np.array(m.embeddings.families["other"].vectors, dtype=np.float32)
    assert np.min(np.sum(window * kept, axis=1)) > 0.99  # int8 rows: cosines within about 1 %
    assert monitor(unit_rows(rng.normal(size=(200, 32)))).report()["embeddings"]["families"] == {}


@pytest.mark.skipif(not (Path(Settings().model_dir) / SAMPLE_FILE).is_file(), reason="no embedding sample")
def test_uploaded_pairs_become_the_similarity_familys_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The team's baseline texts are the similarity family's reference; the card's sample stays the domain one."""
    from tests.test_drift_api import API_KEY, KEY, PAIRS

    set_constants(monkeypatch, EMBED_WINDOW=20, EMBED_MIN_SAMPLES=10)
    with client(data_dir=tmp_path, api_key=API_KEY, drift_embed_check_every=10) as c:
        pairs = [p[:2] for p in PAIRS]
        assert c.put("/drift/baseline/similarity", json={"pairs": pairs}, headers=KEY).status_code == 200
        assert c.post("/similarity", json={"pairs": pairs}).status_code == 200
        c.app.state.services.monitor.run_due_checks()
        embeddings = c.get("/drift").json()["embeddings"]
        family = embeddings["families"]["similarity"]
        assert family["reference"]["kind"] == "uploaded" and family["reference"]["source"] == "uploaded:similarity"
        assert family["reference"]["n"] == 20  # a subsample of the 24 texts, EMBED_WINDOW of them
        assert family["domain"]["reference"] == SAMPLE_FILE and "pvalue" in family["domain"]
        assert "raw_status" not in family["domain"]  # a domain verdict, never a drift level
        assert embeddings["reference"]["kind"] == "card"


def topics(rng: np.random.Generator, centres: np.ndarray, runs: list[int], run: int) -> np.ndarray:
    """`run` sentences of each topic in `runs`, in that order: traffic grouped by topic."""
    return np.concatenate([unit_rows(centres[t] + rng.normal(size=(run, centres.shape[1]))) for t in runs])


def test_topic_grouped_traffic_of_another_domain_stays_clear_and_a_shift_after_it_drifts() -> None:
    """A team's traffic in runs of one topic (reviews by site, intents in runs), of another domain than the card's
    sample: against the card every window is far beyond its mix floor, and the family used to say `drift` from its
    first check on, for ever. Now it learns its reference from its first window, grows it with the traffic judged
    normal, and stays clear of `drift` through topics its first window never saw; the card's verdict is `domain`.
    Texts of a third domain after it drift. The same for traffic of the card's own domain."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(32, 32)) * 0.9  # 10 topics of the card's domain, 10 of the team's, 12 of a third
    centres[10:20] += 8.0 * np.eye(32)[0]
    centres[20:] *= 3.0
    card = topics(rng, centres, list(range(10)) * 4, 15)[rng.permutation(600)]
    for domain, first in (("other_domain", 10), ("in_domain", 0)):
        e = EmbeddingMonitor(card, 300, 100, 100, 100, Limit(0.05, 0.01, True), 2, 3)
        runs = [first + t for _ in range(3) for t in rng.permutation(10)]
        ordered = topics(rng, centres, runs, 40)
        statuses, against_card = [], []
        for i in range(0, ordered.shape[0], 100):
            e.record(ordered[i : i + 100])
            e.run_due_checks()
            family = e.report().families["other"]
            statuses.append(family.status)
            live = np.array(e.families["other"].vectors, dtype=np.float32)
            if live.shape[0] >= 100:  # none right after the first window became the reference
                against_card.append(mmd_test(e.card.vectors, live, e.card.bandwidth, 100, floor=e.card.floor)[1])
        assert "drift" not in statuses and statuses[-1] == "ok", (domain, statuses)
        assert family.domain is not None and family.domain.status == domain
        assert family.reference is not None and family.reference.kind == "learned"
        if domain == "other_domain":
            assert np.mean(np.array(against_card) <= 0.01) >= 0.8  # the old verdict: drift, on every window
        assert family.reference.seen > 300  # normal traffic joined the reference
        for _ in range(5):
            e.record(topics(rng, centres, [20 + t for t in rng.choice(12, 2, replace=False)], 50))
            e.run_due_checks()
        assert e.report().families["other"].status == "drift", domain
        assert e.report().reference.mix_floor > 0.0  # the domain reference: the card's sample, its own floor


def test_a_family_still_learning_its_reference_says_how_far_and_has_no_reference() -> None:
    """Before its first full window a family has no reference of its own: GET /drift writes `reference` as null
    and `learning` with the count so far; the domain test already ran, and the status waits."""
    rng = np.random.default_rng(5)
    e = EmbeddingMonitor(unit_rows(rng.normal(size=(200, 32))), 150, 100, 50, 50, Limit(0.05, 0.01, True), 2, 3)
    e.record(unit_rows(rng.normal(size=(120, 32))))
    assert e.run_due_checks() == 1
    family = e.report().as_json()["families"]["other"]
    assert family["status"] == "pending" and family["reference"] is None and family["n_live"] == 120
    assert family["learning"] == "its first 150 embeddings become its reference: 120 so far"
    assert family["domain"]["status"] == "in_domain" and family["domain"]["n_live"] == 120
    assert "mmd2" not in family and "pvalue" in family["domain"]
