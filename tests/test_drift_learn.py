"""O2V_DRIFT_BASELINE=learn: a stream's own first live scores become its reference, and the advice tells traffic
unlike the validation domain apart from a model that stopped generalizing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.drift_fixtures import config, feed, monitor, scores, set_constants
from tests.gateway_fixtures import client

LEARN = config(
    window=400, min_samples=50, check_every=10, baseline="learn", learn_warmup=20, learn_size=150, shift_window=200
)
PRODUCTS = ["blender", "headphones", "hiking boots", "coffee maker", "novel", "phone case", "desk lamp", "tent"]
OPINIONS = [
    "The {p} broke after two weeks and support never answered.",
    "I love this {p}, it works exactly as described.",
    "Shipping took a month but the {p} itself is fine.",
    "Great value: the {p} feels sturdy and looks nice.",
    "Returned the {p} because it was smaller than pictured.",
    "My kids use the {p} every day and it still works.",
    "The {p} smells of plastic and the color faded quickly.",
    "Five stars, I bought a second {p} for my sister.",
]


def review_pairs(n: int, seed: int = 0) -> list[list[str]]:
    """Ordinary product reviews, each pair two unrelated ones: not STS-style pairs, and low cosines."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a, b = rng.sample(range(len(OPINIONS)), 2)
        p, q = rng.sample(PRODUCTS, 2)
        pairs.append([OPINIONS[a].format(p=p), OPINIONS[b].format(p=q)])
    return pairs


def test_review_traffic_differs_from_the_card_but_is_no_generalization_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_constants(monkeypatch, LEARN_WARMUP=20, LEARN_SIZE=150)
    learn = {"drift_baseline": "learn", "drift_min_samples": 50}
    with client(data_dir=tmp_path, drift_check_every=10, drift_window=400, **learn) as c:
        monitor_ = c.app.state.services.monitor
        statuses = []
        for chunk in range(0, 300, 10):
            assert c.post("/similarity", json={"pairs": review_pairs(300)[chunk : chunk + 10]}).status_code == 200
            monitor_.run_due_checks()
            statuses.append(c.get("/drift", params={"stream": "similarity"}).json()["streams"]["similarity"]["status"])
        s = c.get("/drift").json()["streams"]["similarity"]
        metrics = c.get("/metrics").text
    assert 'o2v_drift_domain_status{stream="similarity"} 2.0' in metrics
    assert 'o2v_drift_shift_threshold{level="drift",stream="similarity"}' in metrics
    assert 'o2v_drift_statistic{stream="similarity",test="shift_z"}' in metrics
    assert "drift" not in statuses and s["status"] == "ok"
    assert s["baseline"]["kind"] == "learned" and s["n_baseline"] == 150 and s["n_live"] == 130
    assert s["domain"]["status"] == "drift"  # against the validation scores it is another domain
    assert s["domain"]["baseline"]["source"].startswith("model_card:")
    assert "not a generalization failure" in s["advice"] and "validation domain" in s["advice"]


def test_a_shift_after_learning_reads_as_a_generalization_failure() -> None:
    """A full window (400) of normal traffic after learning first: until a stream has shown one unordered window, a
    change inside its first window is judged as possible order (service/drift/ordering.py)."""
    m = monitor(config=LEARN)
    feed(m, "similarity", scores(20 + 150 + 400, mean=0.2, std=0.1, seed=1))
    r = m.stream_report("similarity")
    assert (r["status"], r["baseline"]["kind"], r["domain"]["status"]) == ("ok", "learned", "drift")
    assert "drift" in feed(m, "similarity", scores(200, mean=0.35, std=0.1, seed=2))
    r = m.stream_report("similarity")
    assert r["status"] == "drift" and "stopped generalizing" in r["advice"]
    assert r["statistics"]["shift_z"]["value"] > r["statistics"]["shift_z"]["drift"]


def test_card_mode_flags_the_same_traffic_as_drift() -> None:
    """The contrast the learned baseline removes: in card mode unlike-domain traffic is drift, with no domain part."""
    m = monitor()
    assert feed(m, "similarity", scores(200, mean=0.2, std=0.1, seed=1))[-1] == "drift"
    assert m.stream_report("similarity")["domain"] is None
