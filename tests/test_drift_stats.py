"""Each drift statistic against scipy or a hand-computed value on small arrays."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from service.drift.stats import bin_fractions, compare, linf_robust, psi, quantile_edges, shared_histogram, summary


def exact_ks_pvalue(a: list[float], b: list[float]) -> float:
    """The permutation distribution of the KS statistic, enumerated: P(D ≥ observed) over all splits."""

    def d(x: list[float], y: list[float]) -> float:
        grid = sorted(x + y)
        return max(abs(sum(v <= g for v in x) / len(x) - sum(v <= g for v in y) / len(y)) for g in grid)

    pooled, observed = a + b, d(a, b)
    splits = list(combinations(range(len(pooled)), len(a)))
    hits = 0
    for idx in splits:
        x = [pooled[i] for i in idx]
        y = [pooled[i] for i in range(len(pooled)) if i not in idx]
        hits += d(x, y) >= observed - 1e-12
    return hits / len(splits)


def test_ks_statistic_and_pvalue_match_hand_and_permutation() -> None:
    base, live = [1.0, 2.0, 3.0, 4.0, 5.0], [3.5, 4.5, 5.5, 6.5, 7.5]
    stats = compare(np.array(base), np.array(live), quantile_edges(np.array(base), 2))
    assert stats.linf == pytest.approx(0.6)  # at x=3: F_base 0.6, F_live 0
    assert stats.ks_pvalue == pytest.approx(exact_ks_pvalue(base, live))
    assert stats.ks_pvalue == pytest.approx(ks_2samp(live, base).pvalue)


def test_psi_hand_computed() -> None:
    # (0.25 − 0.5)·ln(0.25/0.5) + (0.75 − 0.5)·ln(0.75/0.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(expected)
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_psi_empty_bin_is_finite_through_epsilon() -> None:
    value = psi(np.array([0.5, 0.5]), np.array([1.0, 0.0]), epsilon=1e-4)
    assert value == pytest.approx(0.5 * math.log(2) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


def test_baseline_quantile_bins() -> None:
    base = np.array([1.0, 2.0, 3.0, 4.0])
    edges = quantile_edges(base, 2)
    assert edges.tolist() == [2.5]
    assert bin_fractions(base, edges).tolist() == [0.5, 0.5]
    assert bin_fractions(np.array([1.0, 1.0, 1.0, 4.0]), edges).tolist() == [0.75, 0.25]
    assert quantile_edges(np.array([1.0] * 9 + [2.0]), 4).tolist() == [1.0]  # tied quantiles merge


def js_by_hand(p: list[float], q: list[float]) -> float:
    """√(½·KL(p‖m) + ½·KL(q‖m)) with m = (p + q)/2, base 2, 0·log 0 = 0."""
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(x: list[float]) -> float:
        return sum(a * math.log2(a / b) for a, b in zip(x, m, strict=True) if a > 0)

    return math.sqrt((kl(p) + kl(q)) / 2)


def test_psi_and_js_in_compare_use_baseline_quantile_bins() -> None:
    base, live = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 1.0, 4.0])
    stats = compare(base, live, quantile_edges(base, 2))
    assert stats.psi == pytest.approx(0.25 * math.log(1.5) + 0.25 * math.log(2))
    assert stats.js == pytest.approx(js_by_hand([0.5, 0.5], [0.75, 0.25]))


def test_js_with_an_empty_live_bin() -> None:
    base, live = np.array([0.0, 0.1, 0.2, 0.3]), np.array([5.0, 6.0, 7.0, 8.0])
    stats = compare(base, live, quantile_edges(base, 2))
    assert stats.js == pytest.approx(js_by_hand([0.5, 0.5], [0.0, 1.0]))
    assert stats.js == pytest.approx(0.557923, abs=1e-6)


def test_wasserstein_hand_computed_and_normalised() -> None:
    base = np.array([0.0, 0.0, 1.0])
    stats = compare(base, np.array([0.0, 1.0, 1.0]), quantile_edges(base, 2))
    assert stats.wasserstein == pytest.approx(1 / 3)  # |F − G| = 1/3 on [0, 1)
    assert stats.wasserstein_norm == pytest.approx((1 / 3) / np.std(base))
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 50), rng.normal(0.3, 1, 40)
    assert compare(a, b, quantile_edges(a, 10)).wasserstein == pytest.approx(wasserstein_distance(b, a))


def test_linf_robust_is_sagemakers_small_sample_allowance() -> None:
    assert linf_robust(0.5, 4, 4) == 0.0
    assert linf_robust(0.3, 10_000, 10_000) == pytest.approx(0.3 - 1.8 * math.sqrt(2 / 10_000))


def test_summary_and_shared_histogram() -> None:
    s = summary(np.array([1.0, 2.0, 3.0, 4.0]))
    assert (s["n"], s["mean"], s["quantiles"]["0.5"]) == (4, 2.5, 2.5)
    assert summary(np.array([])) == {"n": 0}
    h = shared_histogram(np.array([0.0, 1.0]), np.array([1.0, 2.0]), bins=2)
    assert h["edges"] == [0.0, 1.0, 2.0]
    assert (h["baseline"], h["live"]) == ([0.5, 0.5], [0.0, 1.0])
