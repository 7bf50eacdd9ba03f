"""Verdicts: the KS gate plus a distance, no verdict below the minimum sample count, and hysteresis."""

from __future__ import annotations

import numpy as np

from service.drift.stats import Statistics, compare, quantile_edges
from service.drift.status import StatusTracker, level
from tests.drift_fixtures import config as drift_config
from tests.drift_fixtures import feed, monitor, scores

LIMITS = drift_config().limits


def stats(p: float = 0.5, linf: float = 0.0, psi: float = 0.0, js: float = 0.0, w: float = 0.0) -> Statistics:
    return Statistics(ks_pvalue=p, linf=linf, linf_robust=0.0, psi=psi, js=js, wasserstein=w, wasserstein_norm=w)


def test_level_needs_the_gate_and_one_distance() -> None:
    assert level(stats(p=0.0001), LIMITS) == 0  # significant but tiny: nothing to act on
    assert level(stats(p=0.5, linf=0.3, psi=1.0), LIMITS) == 0  # large but not significant: small-sample noise
    assert level(stats(p=0.0001, psi=0.25), LIMITS) == 2
    assert level(stats(p=0.0001, w=0.2), LIMITS) == 2
    assert level(stats(p=0.03, linf=0.3), LIMITS) == 1  # p between 0.01 and 0.05
    assert level(stats(p=0.0001, linf=0.07), LIMITS) == 1  # distance between the warning and drift thresholds
    assert level(stats(p=0.001, psi=0.25), LIMITS) == 1  # p between the drift gate and the warning one


def test_relaxed_thresholds_hold_a_raised_level() -> None:
    near = stats(p=0.001, linf=0.09)  # below the drift thresholds, within 80 % of them on the gate's log scale
    assert level(near, LIMITS) == 1
    assert level(near, LIMITS, scale=0.8) == 2
    assert level(stats(p=0.04, linf=0.09), LIMITS, scale=0.8) == 1


def test_tracker_rises_after_confirm_and_falls_after_clear() -> None:
    t = StatusTracker(confirm=2, clear=3)
    assert t.step(2, 2) == ("pending", "ok")  # the first verdict is never an alarm
    assert t.step(2, 2) == ("ok", "drift")
    assert t.step(0, 2) is None  # still within the relaxed thresholds
    assert t.step(0, 0) is None
    assert t.step(0, 0) is None
    assert t.step(0, 0) == ("drift", "ok")  # three checks in a row below the relaxed thresholds


def test_tracker_does_not_flap_on_an_alternating_signal() -> None:
    t = StatusTracker(confirm=2, clear=3)
    changes = [t.step(lvl, lvl) for lvl in [0, 2, 0, 2, 0, 2, 0, 2, 0, 1, 0, 1]]
    assert [c for c in changes if c] == [("pending", "ok")]
    t = StatusTracker(confirm=2, clear=3, status="drift")
    assert [t.step(e, h) for e, h in [(0, 0), (2, 2), (0, 0), (0, 0), (2, 2)]] == [None] * 5


def test_no_verdict_below_min_samples() -> None:
    m = monitor()  # min_samples 50, baseline N(0.5, 0.1)
    feed(m, "similarity", scores(40, mean=0.9))  # far off, but too few to judge
    r = m.stream_report("similarity")
    assert (r["status"], r["raw_status"], r["statistics"]) == ("pending", "pending", {})
    assert feed(m, "similarity", scores(10, mean=0.9, seed=1)) == ["ok"]
    assert m.stream_report("similarity")["raw_status"] == "drift"
    assert feed(m, "similarity", scores(10, mean=0.9, seed=2)) == ["drift"]


def test_status_follows_a_shift_and_its_end() -> None:
    m = monitor()
    seen = feed(m, "similarity", scores(100, seed=1) + scores(200, mean=0.6, seed=2) + scores(400, seed=3))
    assert seen[4] == "ok" and "drift" in seen and seen[-1] == "ok"
    first, last = seen.index("drift"), len(seen) - 1 - seen[::-1].index("drift")
    assert all(s == "drift" for s in seen[first : last + 1])  # one episode, no flapping


def test_windows_from_the_baseline_distribution_rarely_alarm() -> None:
    """200 independent (baseline, live window) pairs from one distribution: the drift rate stays near α = 1 %."""
    config = drift_config()
    rng = np.random.default_rng(11)
    verdicts = []
    for _ in range(200):
        baseline = np.sort(rng.normal(0.5, 0.2, 1500))
        stats = compare(baseline, rng.normal(0.5, 0.2, config.window), quantile_edges(baseline, config.psi_bins))
        verdicts.append(level(stats, config.limits))
    assert verdicts.count(2) <= 4
