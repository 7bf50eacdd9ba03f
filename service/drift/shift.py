"""A change detector for small location shifts: a recent-window score test calibrated by simulation on the baseline.

Why not only KS/PSI over the long window: after a window of normal traffic a 0.05 shift is diluted by the old scores
and found late (bench.drift). Here the last `window` live scores are tested against the baseline with the
locally most powerful statistic for a shift of the baseline density f, the efficient score ψ = −f′/f (Hájek,
Šidák & Sen, *Theory of Rank Tests*, ch. 3): for a bounded, two-humped score distribution it carries more
information than the mean (Fisher information I(f) ≥ 1/σ²). f is a Gaussian kernel density of the baseline
(Silverman's bandwidth); ψ is tabulated on a grid and clipped, so a stray score cannot dominate.

The statistic is z = (mean ψ(live) − mean ψ(baseline)) / (sd ψ · √(1/n + 1/N)): it counts the baseline's own
sampling error, which over a long run is what makes false alarms. Its thresholds are not normal quantiles but are
chosen by simulation (smoothed bootstrap of the baseline, a fresh baseline draw per path): the (1 − α) quantile of
the largest |z| a run of `horizon` normal scores reaches at the monitor's checks, counting a crossing only when
`confirm` consecutive checks agree, as the status does. So α is the share of normal runs of that length that
would ever be raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

GRID_POINTS = 1024
BANDWIDTH_FLOOR = 1e-3
SD_FLOOR = 1e-9
MIN_DISTINCT = 20  # fewer distinct baseline values (0/1 flags): a kernel density's score means nothing there
MAX_ATOM = 0.05  # nor when one value holds more of the baseline (mostly-zero rates): draws smear it, live scores not
SEED = 20261130  # thresholds are a function of the baseline: the same baseline always gets the same ones


@dataclass(frozen=True)
class ShiftParams:
    """The O2V_DRIFT_SHIFT_* settings and the check schedule the simulation imitates."""

    window: int
    horizon: int
    false_alarm: float  # drift threshold: share of normal runs of `horizon` scores ever raised
    warning_false_alarm: float
    simulations: int
    clip: float  # ψ is clipped at mean ± clip·sd
    min_samples: int
    check_every: int
    confirm: int


@dataclass(frozen=True)
class ShiftTest:
    """ψ tabulated on a grid, its baseline mean and sd, and the calibrated thresholds for |z|."""

    grid: np.ndarray
    psi: np.ndarray
    mean: float
    sd: float
    n_baseline: int
    window: int
    warning: float
    drift: float

    def statistic(self, live: np.ndarray) -> float:
        """z of the last `window` live scores; positive when they sit higher than the baseline."""
        recent = live[-self.window :]
        n = recent.size
        u = np.interp(recent, self.grid, self.psi)
        return float((u.mean() - self.mean) / (self.sd * np.sqrt(1.0 / n + 1.0 / self.n_baseline)))


def bandwidth(scores: np.ndarray) -> float:
    """Silverman's rule of thumb, 0.9·min(σ, IQR/1.34)·n^(−1/5), floored for near-constant baselines."""
    iqr = float(np.subtract(*np.percentile(scores, [75, 25])))
    spread = min(float(scores.std()), iqr / 1.34) or float(scores.std())
    return max(0.9 * spread * scores.size ** (-0.2), BANDWIDTH_FLOOR)


def efficient_score(scores: np.ndarray, bw: float, clip: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(grid, ψ on the grid, mean ψ, sd ψ) for the kernel density f̂ of `scores`.

    Mean and sd are integrals over f̂, i.e. what new scores from the baseline's distribution give, not averages over
    the baseline's own points: at those ψ is biased by each point's own kernel, and the simulation, whose draws are
    new scores, would then be calibrating another statistic.
    """
    grid = np.linspace(scores.min() - 4 * bw, scores.max() + 4 * bw, GRID_POINTS)
    d = (grid[:, None] - scores[None, :]) / bw
    sq = d * d
    nearest = sq.min(axis=1, keepdims=True)
    w = np.exp(-0.5 * (sq - nearest))  # shifted per row: no underflow between far-apart scores
    psi = (w * d).sum(axis=1) / w.sum(axis=1) / bw  # −f′/f of the Gaussian mixture
    log_density = np.log(w.sum(axis=1)) - 0.5 * nearest[:, 0]
    weights = np.exp(log_density - log_density.max())
    weights /= weights.sum()

    def moments(values: np.ndarray) -> tuple[float, float]:
        mean = float(weights @ values)
        return mean, max(float(np.sqrt(weights @ (values - mean) ** 2)), SD_FLOOR)

    mean, sd = moments(psi)
    psi = np.clip(psi, mean - clip * sd, mean + clip * sd)
    mean, sd = moments(psi)
    return grid, psi, mean, sd


def calibrate(scores: np.ndarray, p: ShiftParams) -> ShiftTest:
    """Build the test for this baseline and simulate its thresholds (see the module docstring)."""
    return _calibrate(np.ascontiguousarray(scores, dtype=np.float64).tobytes(), p)


@lru_cache(maxsize=64)
def _calibrate(raw: bytes, p: ShiftParams) -> ShiftTest:
    scores = np.frombuffer(raw, dtype=np.float64)
    bw = bandwidth(scores)
    grid, psi, mean, sd = efficient_score(scores, bw, p.clip)
    n, rng = scores.size, np.random.default_rng(SEED)
    checks = np.arange(min(p.min_samples, p.horizon), p.horizon + 1, p.check_every)
    worst = []
    for start in range(0, p.simulations, 100):
        m = min(100, p.simulations - start)
        ref = np.interp(rng.choice(scores, (m, n)) + rng.normal(0.0, bw, (m, n)), grid, psi).mean(axis=1)
        live = np.interp(rng.choice(scores, (m, p.horizon)) + rng.normal(0.0, bw, (m, p.horizon)), grid, psi)
        cum = np.concatenate([np.zeros((m, 1)), np.cumsum(live, axis=1)], axis=1)
        lo = np.maximum(checks - p.window, 0)
        k = checks - lo
        z = np.abs(((cum[:, checks] - cum[:, lo]) / k - ref[:, None]) / (sd * np.sqrt(1.0 / k + 1.0 / n)))
        if p.confirm > 1:  # a crossing counts when `confirm` consecutive checks are all past the threshold
            z = np.min(np.stack([z[:, i : z.shape[1] - p.confirm + 1 + i] for i in range(p.confirm)]), axis=0)
        worst.append(z.max(axis=1))
    maxima = np.concatenate(worst)
    return ShiftTest(
        grid=grid,
        psi=psi,
        mean=mean,
        sd=sd,
        n_baseline=n,
        window=p.window,
        warning=float(np.quantile(maxima, 1.0 - p.warning_false_alarm)),
        drift=float(np.quantile(maxima, 1.0 - p.false_alarm)),
    )
