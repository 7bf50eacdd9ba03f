"""A change detector for small location shifts: a recent-window score test calibrated by simulation on the baseline.

Why not only KS/PSI over the long window: after a window of normal traffic a 0.05 shift is diluted by the old scores
and found late (bench.drift). Here the last `window` live scores are tested against the baseline with the
locally most powerful statistic for a shift of the baseline density f, the efficient score ψ = −f′/f (Hájek,
Šidák & Sen, *Theory of Rank Tests*, ch. 3): for a bounded, two-humped score distribution it carries more
information than the mean (Fisher information I(f) ≥ 1/σ²). f is a Gaussian kernel density of the baseline
(Silverman's bandwidth); ψ is tabulated on a grid and clipped, so a stray score cannot dominate.

The statistic is z = (mean ψ(live) − mean ψ(baseline)) / (sd ψ · √(1/n + 1/N)): it counts the baseline's own
sampling error, which over a long run is what makes false alarms. Its thresholds are not normal quantiles but are
chosen by simulation: live scores are a bootstrap of ψ's leave-one-out values at the baseline's points (what new
scores give, see `efficient_score`), each path with its own draw of the baseline mean's error (sd/√N; measured
against 100k fresh scores on the bundled card's distribution it is 0.90–0.99 of that). The drift limit is the
(1 − α) quantile of the largest |z| a run of `horizon` normal scores reaches at the monitor's checks, counting a
crossing only when `confirm` consecutive checks agree, as the status does. So α is the share of normal runs of that
length that would ever be raised.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

GRID_POINTS = 1024
BANDWIDTH_FLOOR = 1e-3
SD_FLOOR = 1e-9
MIN_DISTINCT = 20  # fewer distinct baseline values (0/1 flags): a kernel density's score means nothing there
MAX_ATOM = 0.05  # nor when one value holds more of the baseline (mostly-zero rates): draws smear it, live scores not
LOO_POINTS = 2048  # baseline points ψ's leave-one-out values are taken at (bounded work for a 100k-score upload)
LOO_CHUNK = 256
LEFT_OUT = 1e6  # a distance (in bandwidths) whose kernel weight is exactly 0
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
    reference_max: int = 0  # live scores the reference may absorb (0: it stays the baseline's)


@dataclass(frozen=True)
class Settled:
    """Live scores absorbed into a stream's shift-test reference: how many, and the sum of their ψ."""

    n: int = 0
    total: float = 0.0

    def add(self, psi: np.ndarray) -> Settled:
        return Settled(self.n + psi.size, self.total + float(psi.sum()))

    def state(self) -> dict[str, float]:
        return {"n": self.n, "total": self.total}

    @classmethod
    def restore(cls, state: dict[str, float] | None) -> Settled:
        state = state or {}
        n, total = int(state.get("n", 0)), float(state.get("total", 0.0))
        return cls(n, total) if n > 0 and np.isfinite(total) else cls()


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

    def statistic(self, live: np.ndarray, settled: Settled | None = None) -> float:
        """z of the last `window` live scores against the baseline and the `settled` live scores; positive when they
        sit higher."""
        recent = live[-self.window :]
        n = recent.size
        u = self.psi_of(recent)
        extra = settled or Settled()
        size = self.n_baseline + extra.n
        reference = (self.n_baseline * self.mean + extra.total) / size
        return float((u.mean() - reference) / (self.sd * np.sqrt(1.0 / n + 1.0 / size)))

    def psi_of(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.grid, self.psi)


def bandwidth(scores: np.ndarray) -> float:
    """Silverman's rule of thumb, 0.9·min(σ, IQR/1.34)·n^(−1/5), floored for near-constant baselines."""
    iqr = float(np.subtract(*np.percentile(scores, [75, 25])))
    spread = min(float(scores.std()), iqr / 1.34) or float(scores.std())
    return max(0.9 * spread * scores.size ** (-0.2), BANDWIDTH_FLOOR)


def efficient_score(scores: np.ndarray, bw: float, clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grid, ψ on the grid, ψ at new points) for the kernel density f̂ of `scores`.

    ψ at new points are the leave-one-out values ψ̂₋ᵢ(xᵢ) (`loo_values`): each baseline point's score under the
    density of all the others, so what scores from the true distribution f give. Their mean and sd are the test's
    null; neither the integral over f̂ (0 by construction, while E_f[ψ_f̂] is not: f̂ is f smoothed once more; on
    the bundled model's card normal traffic sat at z ≈ −0.4, a fall easier to catch than a rise) nor ψ at the
    points themselves (pulled towards 0 by each point's own kernel).
    """
    grid = np.linspace(scores.min() - 4 * bw, scores.max() + 4 * bw, GRID_POINTS)
    psi, log_density = _score((grid[:, None] - scores[None, :]) / bw, bw)
    weights = np.exp(log_density - log_density.max())
    weights /= weights.sum()
    mean = float(weights @ psi)
    sd = max(float(np.sqrt(weights @ (psi - mean) ** 2)), SD_FLOOR)
    lo, hi = mean - clip * sd, mean + clip * sd
    return grid, np.clip(psi, lo, hi), np.clip(loo_values(scores, bw), lo, hi)


def loo_values(scores: np.ndarray, bw: float) -> np.ndarray:
    """ψ̂₋ᵢ(xᵢ) at up to LOO_POINTS baseline points spread evenly over the sorted baseline (bounded work for a
    100k-score upload; evenly spread, they keep the distribution's shape)."""
    order = np.argsort(scores, kind="stable")
    at = order[np.linspace(0, scores.size - 1, min(scores.size, LOO_POINTS)).round().astype(int)]
    out = np.empty(at.size)
    for start in range(0, at.size, LOO_CHUNK):
        rows = at[start : start + LOO_CHUNK]
        d = (scores[rows, None] - scores[None, :]) / bw
        d[np.arange(rows.size), rows] = LEFT_OUT  # the point itself: weight 0
        out[start : start + rows.size] = _score(d, bw)[0]
    return out


def _score(d: np.ndarray, bw: float) -> tuple[np.ndarray, np.ndarray]:
    """ψ = −f′/f of the Gaussian mixture at each row's point, from its distances to the scores in bandwidths, and
    the row's log density (up to one constant). Weights are shifted per row: no underflow between far-apart scores."""
    w = d * d
    nearest = w.min(axis=1, keepdims=True)
    w -= nearest  # in place, one array of the matrix's size: the same values as exp(−½(d² − nearest))
    w *= -0.5
    np.exp(w, out=w)
    total = w.sum(axis=1)
    w *= d
    return w.sum(axis=1) / total / bw, np.log(total) - 0.5 * nearest[:, 0]


Thresholds = tuple[float, float]
"""A shift test's (warning, drift) limits of |z|."""


def calibrate(scores: np.ndarray, p: ShiftParams, known: Thresholds | None = None) -> ShiftTest:
    """Build the test for this baseline and simulate its thresholds (see the module docstring); `known` thresholds
    (a model card's, `known_thresholds`) are taken instead of simulating them again."""
    return _calibrate(np.ascontiguousarray(scores, dtype=np.float64).tobytes(), p, known)


@lru_cache(maxsize=64)
def _calibrate(raw: bytes, p: ShiftParams, known: Thresholds | None) -> ShiftTest:
    scores = np.frombuffer(raw, dtype=np.float64)
    bw = bandwidth(scores)
    grid, psi, null = efficient_score(scores, bw, p.clip)
    mean, sd = float(null.mean()), max(float(null.std()), SD_FLOOR)
    warning, drift = known or simulate(null, mean, sd, scores.size, p)
    return ShiftTest(
        grid=grid, psi=psi, mean=mean, sd=sd, n_baseline=scores.size, window=p.window, warning=warning, drift=drift
    )


def simulate(null: np.ndarray, mean: float, sd: float, n: int, p: ShiftParams) -> Thresholds:
    """The warning and drift limits of |z|: quantiles of the largest |z| that simulated normal runs reach."""
    rng = np.random.default_rng(SEED)
    checks = np.arange(min(p.min_samples, p.horizon), p.horizon + 1, p.check_every)
    worst, sums = [], np.zeros((100, p.horizon + 1))  # sums[:, i]: the first i live scores' sum, reused
    for start in range(0, p.simulations, 100):
        m = min(100, p.simulations - start)
        ref = rng.normal(mean, sd / np.sqrt(n), m)  # the baseline mean's error: a mean of n values (CLT)
        live = rng.choice(null, (m, p.horizon))
        cum = sums[:m]
        np.cumsum(live, axis=1, out=cum[:, 1:])
        lo = np.maximum(checks - p.window, 0)
        k = checks - lo
        settled = np.minimum(lo, p.reference_max)  # the scores that left the window join the reference
        size = n + settled
        reference = (n * ref[:, None] + cum[:, settled]) / size
        z = np.abs(((cum[:, checks] - cum[:, lo]) / k - reference) / (sd * np.sqrt(1.0 / k + 1.0 / size)))
        if p.confirm > 1:  # a crossing counts when `confirm` consecutive checks are all past the threshold
            z = np.min(np.stack([z[:, i : z.shape[1] - p.confirm + 1 + i] for i in range(p.confirm)]), axis=0)
        worst.append(z.max(axis=1))
    maxima = np.concatenate(worst)
    return float(np.quantile(maxima, 1.0 - p.warning_false_alarm)), float(np.quantile(maxima, 1.0 - p.false_alarm))


def scores_digest(scores: np.ndarray) -> str:
    """What a stored calibration was simulated on: the sha256 of the baseline's scores as float64."""
    return hashlib.sha256(np.ascontiguousarray(scores, dtype=np.float64).tobytes()).hexdigest()


def thresholds_entry(scores: np.ndarray, p: ShiftParams) -> dict[str, Any]:
    """The simulated limits of this baseline under `p`, as a model card stores them (`known_thresholds` reads them):
    a replica that starts with the same scores and settings then skips the simulation (about 0.35 CPU-s)."""
    test = calibrate(scores, p)
    return {"params": asdict(p), "scores_sha256": scores_digest(scores), "warning": test.warning, "drift": test.drift}


def known_thresholds(entries: Any, scores: np.ndarray, p: ShiftParams) -> Thresholds | None:
    """The stored limits simulated on exactly these scores with exactly these parameters, or None (other settings,
    other scores, a malformed entry: simulate)."""
    if not isinstance(entries, list):
        return None
    wanted, digest = asdict(p), None
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("params") != wanted:
            continue
        digest = digest or scores_digest(scores)
        warning, drift = entry.get("warning"), entry.get("drift")
        if entry.get("scores_sha256") != digest or not (isinstance(warning, float) and isinstance(drift, float)):
            continue
        if 0 < warning < np.inf and 0 < drift < np.inf:
            return warning, drift
    return None
