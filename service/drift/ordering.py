"""How much the order of a stream moves its windows: variance inflation of a window's mean from batch means.

The window tests and the shift test count a window of n scores as n independent draws. Real traffic is not
shuffled: a relatedness set replayed in file order comes in sections of one source, intent traffic in runs of one
intent. A window's mean then wanders more than σ/√n from section to section, and an i.i.d. limit reads that as
drift. NannyML sets its limits from the reference's chunk-to-chunk variation in its natural order; here the same
idea is a one-parameter model, the intra-block correlation ρ of contiguous scores (a random effect per stretch of
traffic): the variance of a mean of L contiguous scores is σ²/L·(1 + (L − 1)·ρ). ρ is estimated from the variance of
`BATCHES` batch means (Flegal & Jones' batch-means estimator of the long-run variance), and counts only where that
variance is significantly above i.i.d. (a χ² test at `GATE`): shuffled traffic keeps ρ = 0, so its limits, false-alarm
rate and power are those of the i.i.d. calibration.

A live window is judged with the larger of its own ρ and its baseline's (in the baseline's natural order) when it
is itself ordered, with the baseline's until it has shown otherwise (`live_correlation`), and with ρ = 0 once a full
window showed no order, until order beyond one change point shows: i.i.d. traffic against an ordered reference
(synthetic draws from a card in file order) is judged on the i.i.d. limits after one window, and a shift after
that is not mistaken for order. The price: a change in the first window of a stream whose reference is ordered,
or of a stream that has shown order, is judged with that spread, so it is found later. The linear extrapolation
to the window's length is conservative where sections are shorter than the window (their effect averages out
there, the model assumes it does not).
"""

from __future__ import annotations

import numpy as np

BATCHES = 20
MIN_BATCH = 2
GATE = 0.99  # a batch-means variance above this χ² quantile (BATCHES − 1 dof) counts as order, not chance
GATE_QUANTILES = {19: 36.19086912927004, 18: 34.805305734705065, 17: 33.40866360500461}
"""χ²(GATE) quantiles at the degrees of freedom `intrablock_correlation` uses (BATCHES − 1, − 2, − 3), as scipy
computes them (tests/test_drift_ordering.py checks each against scipy.stats): every start judges its card
baseline's order, and importing scipy.special cost each server process about 0.5 CPU-s of its start."""


def intrablock_correlation(values: np.ndarray, step: bool = False) -> float:
    """ρ of `values` in the order given; 0 when their batch means vary no more than i.i.d. scores' would (at GATE),
    or when there are too few (fewer than BATCHES × MIN_BATCH). `step`: the batch means' best single change point
    is taken out first, so one shift (what drift looks like) is not read as order; sections that come and go are.
    The batch the change falls inside (part before, part after) may be left out, or a shift that is not on a batch
    boundary would read as order from its second batch on, and hide itself."""
    x = np.asarray(values, dtype=np.float64)
    size = x.size // BATCHES
    var = float(x.var())
    if size < MIN_BATCH or var <= 0.0:
        return 0.0
    means = x[: size * BATCHES].reshape(BATCHES, size).mean(axis=1)
    fits = [(float(((means - means.mean()) ** 2).sum()), BATCHES - 1)]
    if step:
        fits = [(_residual(means[:i], means[i:]), BATCHES - 2) for i in range(1, BATCHES)]
        fits += [(_residual(means[:i], means[i + 1 :]), BATCHES - 3) for i in range(1, BATCHES - 1)]
    over = [(size * spread / dof / var, chi2_quantile(GATE, dof) / dof) for spread, dof in fits]
    if any(inflated <= gate for inflated, gate in over):
        return 0.0
    inflated = min(inflated for inflated, _ in over)
    return (inflated - 1.0) / (size - 1)


def chi2_quantile(q: float, dof: int) -> float:
    """scipy.stats.chi2.ppf(q, dof): GATE_QUANTILES' number where it has one, else computed as scipy.stats computes
    it (scipy.stats costs 1 to 2 s to import, scipy.special a tenth of that)."""
    if q == GATE and dof in GATE_QUANTILES:
        return GATE_QUANTILES[dof]
    from scipy.special import gammaincinv

    return float(2.0 * gammaincinv(dof / 2.0, q))


def _residual(before: np.ndarray, after: np.ndarray) -> float:
    """Squared deviations of two runs of batch means, each from its own mean (a step's leftover)."""
    return float(((before - before.mean()) ** 2).sum() + ((after - after.mean()) ** 2).sum())


def inflation(rho: float, length: int) -> float:
    """Variance of a mean of `length` contiguous scores over σ²/length: 1 + (length − 1)·ρ."""
    return 1.0 + max(length - 1, 0) * max(rho, 0.0)


def live_correlation(window: np.ndarray, reference_rho: float, full: bool, shuffled: bool) -> tuple[float, bool]:
    """(the ρ a live window is judged with, whether the stream counts as shuffled from now on).

    A stream counts as shuffled once a full window (`full`: as many scores as the stream keeps) showed no order,
    and stays so until a window shows order beyond one change point (a single shift is what drift looks like, not
    order): its windows get ρ = 0, the i.i.d. limits (shuffled traffic, bench.drift's synthetic runs). Otherwise an
    ordered window gets the larger of its own ρ and the reference's, and a window too short to tell gets the
    reference's, so that traffic ordered like its reference is judged so from its first request."""
    own = intrablock_correlation(window)
    if shuffled and (own == 0.0 or intrablock_correlation(window, step=True) == 0.0):
        return 0.0, True
    if own > 0.0:
        return max(own, reference_rho), False
    return (0.0, True) if full else (reference_rho, False)


def ks_pvalue(statistic: float, n: float, m: int) -> float:
    """The two-sample KS p-value at `n` effective live scores against `m` baseline scores (Smirnov's distribution of
    the one-sample statistic at the effective size n·m/(n + m))."""
    from scipy.stats import kstwo  # late: scipy.stats costs each start 1-2 s

    effective = max(round(n * m / (n + m)), 1)
    return float(kstwo.sf(statistic, effective))
