"""The two-sample statistics that compare a live score window with its baseline (pure functions, no state)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PSI_EPSILON = 1e-4  # stands in for an empty bin, so one empty bin does not make PSI infinite
LINF_ROBUST_FACTOR = 1.8  # Deequ's linf_robust: linf - 1.8·sqrt((n+m)/(n·m)), SageMaker's small-sample variant
STD_FLOOR = 1e-9


@dataclass(frozen=True)
class Statistics:
    """Every statistic of one comparison; `linf` is the KS statistic, which is SageMaker's L∞ distance."""

    ks_pvalue: float
    linf: float
    linf_robust: float
    psi: float
    js: float
    wasserstein: float
    wasserstein_norm: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def quantile_edges(baseline: np.ndarray, bins: int) -> np.ndarray:
    """Interior bin edges at the baseline's quantiles: each bin holds about 1/bins of the baseline.

    Repeated quantiles (a baseline with ties) are merged, so a bin is never empty by construction.
    """
    inner = np.quantile(baseline, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


def bin_fractions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of `values` in each bin (-inf, e1], (e1, e2], …, (ek, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    return counts / max(values.size, 1)


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index Σ (a − e)·ln(a / e) over bin fractions, empty bins lifted to `epsilon`."""
    e = np.clip(expected, epsilon, None)
    a = np.clip(actual, epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def linf_robust(linf: float, n: int, m: int) -> float:
    """SageMaker Model Monitor's `linf_robust`: the L∞ distance less its small-sample allowance, floored at 0."""
    return max(0.0, linf - LINF_ROBUST_FACTOR * float(np.sqrt((n + m) / (n * m))))


def compare(baseline: np.ndarray, live: np.ndarray, edges: np.ndarray) -> Statistics:
    """All statistics of `live` against `baseline`; `edges` are the baseline's `quantile_edges`."""
    from scipy.spatial.distance import jensenshannon  # late: with scipy.stats, 1-2 s of each start
    from scipy.stats import ks_2samp, wasserstein_distance

    ks = ks_2samp(live, baseline)
    expected, actual = bin_fractions(baseline, edges), bin_fractions(live, edges)
    w = float(wasserstein_distance(live, baseline))
    return Statistics(
        ks_pvalue=float(ks.pvalue),
        linf=float(ks.statistic),
        linf_robust=linf_robust(float(ks.statistic), baseline.size, live.size),
        psi=psi(expected, actual),
        js=float(jensenshannon(expected, actual, base=2.0)),
        wasserstein=w,
        wasserstein_norm=w / max(float(np.std(baseline)), STD_FLOOR),
    )


def summary(scores: np.ndarray) -> dict[str, float | int | dict[str, float]]:
    """n, mean, std and the quantiles model_card.json uses, for showing two distributions side by side."""
    if scores.size == 0:
        return {"n": 0}
    qs = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
    return {
        "n": int(scores.size),
        "mean": round(float(scores.mean()), 6),
        "std": round(float(scores.std()), 6),
        "min": round(float(scores.min()), 6),
        "max": round(float(scores.max()), 6),
        "quantiles": {str(q): round(float(v), 6) for q, v in zip(qs, np.quantile(scores, qs), strict=True)},
    }


def shared_histogram(baseline: np.ndarray, live: np.ndarray, bins: int = 24) -> dict[str, list[float]]:
    """Both distributions as fractions over one set of equal-width bins spanning both, for plotting."""
    both = np.concatenate([baseline, live]) if live.size else baseline
    lo, hi = float(both.min()), float(both.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    edges = np.linspace(lo, hi, bins + 1)

    def fractions(x: np.ndarray) -> list[float]:
        counts, _ = np.histogram(x, bins=edges)
        return [round(float(c) / max(x.size, 1), 6) for c in counts]

    return {"edges": [round(float(e), 6) for e in edges], "baseline": fractions(baseline), "live": fractions(live)}
