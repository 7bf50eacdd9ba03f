"""Ordered traffic: a baseline replayed in its own order (sections of different sources) raises no drift, while a
shift of shuffled traffic is still caught; the ordering estimate says 0 for shuffled scores."""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2

from service.drift.ordering import (
    BATCHES,
    GATE,
    GATE_QUANTILES,
    chi2_quantile,
    inflation,
    intrablock_correlation,
    live_correlation,
)
from tests.drift_fixtures import card, config, feed, monitor

ORDERED = config(window=1000, min_samples=100, check_every=25, shift_simulations=2000)


def sections(seed: int, sizes: tuple[int, ...] = (300, 300, 300, 300, 300)) -> np.ndarray:
    """Scores in runs of one source each, as a relatedness set in file order: each run its own mean."""
    rng = np.random.default_rng(seed)
    means = (0.35, 0.7, 0.5, 0.8, 0.45)
    return np.concatenate([np.clip(rng.normal(m, 0.12, n), -1, 1) for m, n in zip(means, sizes, strict=True)])


def test_the_order_gate_is_scipys_chi2_quantile() -> None:
    """The gate is read from a table or computed without scipy.stats (whose import each start would pay), and is
    the same number; the table holds every dof the estimator uses."""
    assert set(GATE_QUANTILES) == {BATCHES - 1, BATCHES - 2, BATCHES - 3}
    for dof in (BATCHES - 1, BATCHES - 2, BATCHES - 3, 1, 50):
        assert chi2_quantile(GATE, dof) == float(chi2.ppf(GATE, dof))
    assert chi2_quantile(0.95, BATCHES - 1) == float(chi2.ppf(0.95, BATCHES - 1))


def test_shuffled_scores_have_no_ordering_and_sections_do() -> None:
    rng = np.random.default_rng(3)
    shuffled = [intrablock_correlation(rng.normal(0.5, 0.1, 1000)) for _ in range(50)]
    assert sum(r > 0 for r in shuffled) <= 3  # the χ² gate at 0.99: about 1 in 100 by chance
    ordered = sections(1)
    assert intrablock_correlation(ordered) > 0.05
    assert intrablock_correlation(rng.permutation(ordered)) == 0.0
    assert inflation(0.1, 500) == 1.0 + 499 * 0.1
    shuffled_window = rng.normal(0.5, 0.1, 500)
    assert live_correlation(shuffled_window, 0.3, full=True, shuffled=False) == (0.0, True)  # i.i.d. limits
    assert live_correlation(shuffled_window, 0.3, full=False, shuffled=False) == (0.3, False)  # too early to tell
    step = np.concatenate([rng.normal(0.5, 0.1, 500), rng.normal(0.6, 0.1, 500)])
    assert intrablock_correlation(step) > 0 and intrablock_correlation(step, step=True) == 0.0  # a shift, not order
    assert live_correlation(step, 0.3, full=True, shuffled=True) == (0.0, True)  # a shuffled stream that shifted
    assert live_correlation(ordered[:1000], 0.0, full=True, shuffled=True)[1] is False  # sections: order again


def test_a_baseline_replayed_in_its_own_order_stays_out_of_drift() -> None:
    """Upload pairs' scores as the baseline, then send them in file order: limits calibrated on i.i.d. windows would
    put this in drift within the first sections; the natural-order calibration does not."""
    m = monitor(config=ORDERED)
    baseline = sections(1)
    m.set_baseline("similarity", baseline.tolist(), "upload")
    seen = feed(m, "similarity", sections(2).tolist())
    assert "drift" not in seen
    report = m.stream_report("similarity")
    assert report["baseline"]["ordering"] > 0  # the reference's own chunk-to-chunk variation was measured
    assert report["statistics"]["ordering"]["value"] > 0  # and the live window is seen as ordered


def test_a_shift_of_shuffled_traffic_is_still_caught_against_an_ordered_baseline() -> None:
    m = monitor(config=ORDERED)
    baseline = sections(1)
    m.set_baseline("similarity", baseline.tolist(), "upload")
    rng = np.random.default_rng(5)
    normal = rng.permutation(sections(2))[:1000]
    assert "drift" not in feed(m, "similarity", normal.tolist())
    shifted = rng.permutation(sections(3))[:500] - 0.1
    assert "drift" in feed(m, "similarity", shifted.tolist())


def test_shuffled_traffic_of_an_ordered_card_keeps_the_iid_limits() -> None:
    """The bundled card is STS-B dev in file order; synthetic runs draw from it i.i.d. and must keep their power:
    a shuffled live window is judged with ρ = 0 whatever the reference's order."""
    ordered = card()
    ordered["validation_score_distribution"] = {"n": 1500, "scores": sections(9).tolist()}
    m = monitor(config=ORDERED, model_card=ordered)
    rng = np.random.default_rng(8)
    draws = np.concatenate([sections(seed) for seed in (10, 11)])
    assert "drift" not in feed(m, "similarity", rng.permutation(draws)[:1000].tolist())
    seen = feed(m, "similarity", (rng.permutation(draws)[:600] + 0.05).tolist())
    assert "drift" in seen
    assert m.stream_report("similarity")["statistics"]["ordering"]["value"] == 0.0
