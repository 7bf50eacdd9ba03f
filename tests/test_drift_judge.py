"""The judge alone: a window and a baseline in, a verdict out, with no monitor, stream, lock or file around it."""

from __future__ import annotations

import numpy as np

from service.drift.baseline import Baseline
from service.drift.judge import SHIFT_Z, Judge
from service.drift.shift import Settled
from tests.drift_fixtures import config, scores

CFG = config(window=400, min_samples=50, shift_simulations=400)
BASELINE = Baseline.of(scores(1500, seed=1), "upload", CFG.psi_bins, created=0.0)


def test_a_window_like_its_baseline_is_ok_and_a_moved_one_drifts() -> None:
    judge = Judge(CFG)
    same = judge.verdict(BASELINE, np.array(scores(400, seed=2)))
    moved = judge.verdict(BASELINE, np.array(scores(400, mean=0.6, seed=3)))
    assert (same.enter, same.hold) == (0, 0)
    assert moved.enter == 2 and moved.found_shift  # the shift test's z reached its drift limit
    assert abs(moved.values[SHIFT_Z]) >= moved.limits[SHIFT_Z].drift > moved.limits[SHIFT_Z].warning
    assert moved.hold >= moved.enter  # the relaxed thresholds hold whatever the plain ones raise


def test_the_same_inputs_give_the_same_verdict() -> None:
    """No state of its own: a judge answers alike, and two judges of one config answer alike."""
    live = np.array(scores(300, mean=0.53, seed=4))
    first = Judge(CFG).verdict(BASELINE, live, settled=Settled(200, 0.0))
    assert Judge(CFG).verdict(BASELINE, live, settled=Settled(200, 0.0)) == first
    assert Judge(CFG).verdict(BASELINE, live, settled=Settled(200, 0.0)).values == first.values


def test_token_rates_are_judged_by_the_rise_of_their_mean_only() -> None:
    """Rates with a spike at 0: the KS gate pairs with the mean's increase, a fall is no risk, no shift test."""
    rates = Baseline.of([0.0] * 900 + [0.05] * 100, "model_dir:rates", CFG.psi_bins, created=0.0)
    judge = Judge(CFG)
    rise = judge.verdict(rates, np.random.default_rng(5).permutation([0.0] * 200 + [0.3] * 200), vocabulary=True)
    fall = judge.verdict(rates, np.zeros(400), vocabulary=True)
    assert set(rise.limits) == {"ks_pvalue", "mean_increase"} and SHIFT_Z not in rise.values
    assert rise.enter == 2 and fall.enter == 0
    assert judge.shift_test(rates, vocabulary=True) is None
