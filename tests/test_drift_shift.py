"""The shift test: efficient-score statistic, thresholds simulated from the baseline, and detection after a full
window of normal traffic, where the KS-family window alone is diluted."""

from __future__ import annotations

import numpy as np

from service.drift.shift import ShiftParams, bandwidth, calibrate, efficient_score
from tests.drift_fixtures import config, feed, monitor

PARAMS = ShiftParams(
    window=200, horizon=1000, false_alarm=0.05, warning_false_alarm=0.2, simulations=300, clip=4.0,
    min_samples=50, check_every=10, confirm=2,
)  # fmt: skip


def bimodal(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.5, rng.normal(0.25, 0.1, n), rng.normal(0.75, 0.1, n))
    return np.clip(x + shift, -1.0, 1.0)


def test_efficient_score_of_a_normal_baseline_is_its_linear_score() -> None:
    """For N(μ, σ²) −f′/f = (x − μ)/σ²: the kernel estimate follows it, with the kernel's bw² added to σ², so at
    new points its sd is σ / (σ² + bw²) and its mean 0."""
    base = np.sort(np.random.default_rng(0).normal(0.5, 0.1, 4000))
    bw = bandwidth(base)
    grid, psi, null = efficient_score(base, bw, clip=4.0)
    on_base = np.interp(base, grid, psi)
    assert np.corrcoef(on_base, base)[0, 1] > 0.97
    assert abs(null.std() * (base.var() + bw**2) / base.std() - 1.0) < 0.05
    assert abs(null.mean()) < 0.05 * null.std()


def test_normal_traffic_sits_at_z_zero_on_a_bounded_lopsided_baseline() -> None:
    """Cosines pile up below 1.0: there the integral of ψ over the kernel density (0 by construction) is not what
    new scores give, and normal traffic sat at z ≈ +1 here. The leave-one-out null puts it at 0, sd 1."""
    rng = np.random.default_rng(0)

    def draw(n: int) -> np.ndarray:
        return np.clip(1.0 - np.abs(rng.normal(0.0, 0.15, n)) + rng.normal(0.0, 0.01, n), -1.0, 1.0)

    zs = []
    for _ in range(40):
        test = calibrate(draw(1500), PARAMS)
        zs += [test.statistic(draw(PARAMS.window)) for _ in range(10)]
    assert abs(np.mean(zs)) < 0.2 and 0.8 < np.std(zs) < 1.25


def test_thresholds_hold_the_false_alarm_rate_on_fresh_baseline_draws() -> None:
    """Each run draws its own baseline (and simulates its limits) and its own normal traffic: the drift limit is
    crossed on two consecutive checks in about `false_alarm` of the runs (within 3 binomial sd); the statistic's
    sign shows the direction of a shift."""
    checks = np.arange(PARAMS.min_samples, PARAMS.horizon + 1, PARAMS.check_every)
    alarms, runs = 0, 120
    for seed in range(runs):
        test = calibrate(bimodal(1000, seed=1000 + seed), PARAMS)
        live = bimodal(PARAMS.horizon, seed=5000 + seed)
        z = np.abs([test.statistic(live[:k]) for k in checks])
        alarms += bool(np.any((z[1:] >= test.drift) & (z[:-1] >= test.drift)))
    sd = np.sqrt(PARAMS.false_alarm * (1 - PARAMS.false_alarm) / runs)
    assert alarms / runs <= PARAMS.false_alarm + 3 * sd
    assert 0 < test.warning < test.drift
    assert test.statistic(bimodal(500, seed=7, shift=0.05)) > 0 > test.statistic(bimodal(500, seed=7, shift=-0.05))


def test_same_baseline_same_thresholds() -> None:
    a, b = calibrate(bimodal(500, seed=3), PARAMS), calibrate(bimodal(500, seed=3).copy(), PARAMS)
    assert (a.warning, a.drift) == (b.warning, b.drift)


def test_shift_after_a_full_normal_window_is_found_sooner_than_by_the_window_tests() -> None:
    """1000 normal scores, then a 0.05 shift: the shift test raises drift within 500; the KS family alone does not."""
    card = {"name": "m", "validation_score_distribution": {"scores": bimodal(1500, seed=11).tolist()}}
    found = {}
    for label, shift_window in (("shift_test", 500), ("windows_only", 0)):
        m = monitor(config=config(shift_window=shift_window, window=1000, check_every=25), model_card=card)
        feed(m, "similarity", bimodal(1000, seed=12).tolist())
        seen = feed(m, "similarity", bimodal(800, seed=13, shift=0.05).tolist())
        found[label] = 25 * (seen.index("drift") + 1) if "drift" in seen else None
    assert found["shift_test"] is not None and found["shift_test"] <= 500
    assert found["windows_only"] is None or found["windows_only"] > found["shift_test"]
