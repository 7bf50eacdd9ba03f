"""The verdict on one live window against one baseline: the KS family, the shift test and the levels they give.

Pure: no locks, no I/O and no stream state, so a check, bench.drift and a test can call it alike (a baseline
simulates its shift test's limits once, on first use, and keeps them; a verdict and an evaluation compute what
reports show of them once).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from service.drift.baseline import Baseline
from service.drift.config import LEVELS, DriftConfig, Limit
from service.drift.models import Statistic
from service.drift.ordering import inflation, ks_pvalue, live_correlation
from service.drift.shift import Settled, ShiftTest
from service.drift.stats import compare, summary
from service.drift.status import GATE, level

SHIFT_Z = "shift_z"


@dataclass(frozen=True)
class Verdict:
    """One window against one baseline: every statistic (the KS family, the shift test's z, a rate's mean increase),
    the limits that judged them, and the levels they give (`enter` at the thresholds, `hold` relaxed by the
    hysteresis)."""

    values: dict[str, float]
    limits: dict[str, Limit]
    enter: int
    hold: int
    shuffled: bool = False  # the stream counts as shuffled traffic after this window (`ordering.live_correlation`)

    @cached_property
    def statistics(self) -> dict[str, Statistic]:
        """Each statistic with the thresholds that judged it and which one it crossed, as reports show them."""
        out: dict[str, Statistic] = {}
        for key, value in self.values.items():
            limit = self.limits.get(key)
            if limit is None:
                out[key] = Statistic(value=round(value, 6))
                continue
            shown = abs(value) if key == SHIFT_Z else value  # two-sided: the sign says the direction
            crossed = (lvl for lvl in ("drift", "warning") if limit.severity(shown, LEVELS.index(lvl)) >= 1.0)
            thresholds = {k: round(v, 6) for k, v in limit.as_dict().items()}
            out[key] = Statistic(value=round(value, 6), **thresholds, crossed=next(crossed, None))
        return out

    @property
    def found_shift(self) -> bool:
        """The shift statistic reached its drift limit (not merely its warning limit)."""
        z, limit = self.values.get(SHIFT_Z), self.limits.get(SHIFT_Z)
        return z is not None and limit is not None and abs(z) >= limit.drift


@dataclass(frozen=True)
class Evaluation:
    """One stream's window at one moment: `verdict` is None while there is no verdict; `domain` is the same window
    against the model card's validation scores when the stream's own baseline is another (learned or uploaded)."""

    total: int
    live: np.ndarray
    verdict: Verdict | None
    domain: Verdict | None
    at: float

    @cached_property
    def live_summary(self) -> dict[str, Any]:
        return summary(self.live)


class Judge:
    """Judges windows with the configured limits, hysteresis and shift test."""

    def __init__(self, config: DriftConfig) -> None:
        self.config = config

    def verdict(
        self,
        baseline: Baseline,
        live: np.ndarray,
        vocabulary: bool = False,
        settled: Settled | None = None,
        shuffled: bool = False,
    ) -> Verdict:
        """The KS-family level and the shift test's level; the higher one counts (each calibrated on its own).

        `vocabulary` (the token streams): per-text rates with a spike at 0, where every distance flags any change
        of vocabulary; what matters is a rise of the mean rate, so the KS p-value gate pairs with the mean's
        increase (O2V_DRIFT_TOKEN_MARGIN_*), and a fall is no risk. `settled`: live scores the shift test's reference
        absorbed. `shuffled`: whether the stream counted as shuffled traffic so far (`ordering.py`)."""
        c = self.config
        values = compare(baseline.scores, live, baseline.edges).as_dict()
        rho, shuffled = live_correlation(live, baseline.ordering or 0.0, live.size >= c.window, shuffled)
        if rho > 0.0:  # an ordered window: its KS p-value at its effective size (`ordering.py`)
            effective = live.size / inflation(rho, live.size)
            values["ks_pvalue"] = max(values["ks_pvalue"], ks_pvalue(values["linf"], effective, baseline.scores.size))
        values["ordering"] = rho
        limits = dict(c.limits)
        if vocabulary:
            values["mean_increase"] = float(live.mean() - baseline.scores.mean())
            limits = {GATE: c.limits[GATE], "mean_increase": c.token_margin}
        enter, hold = level(values, limits), level(values, limits, 1.0 - c.hysteresis)
        test = self.shift_test(baseline, vocabulary)
        if test is not None:
            recent = min(test.window, live.size)
            z = test.statistic(live, settled) / np.sqrt(inflation(rho, recent))
            values[SHIFT_Z], limits[SHIFT_Z] = z, Limit(test.warning, test.drift)
            for lvl in (1, 2):
                if limits[SHIFT_Z].severity(abs(z), lvl) >= 1.0:
                    enter = max(enter, lvl)
                if limits[SHIFT_Z].severity(abs(z), lvl) >= 1.0 - c.hysteresis:
                    hold = max(hold, lvl)
        return Verdict(values, limits, enter, hold, shuffled)

    def shift_test(self, baseline: Baseline, vocabulary: bool) -> ShiftTest | None:
        """The baseline's calibrated shift test where it applies: the test is on, the baseline continuous, and the
        stream's scores are not token rates (`verdict`). Simulated on first use, then kept by the baseline."""
        if self.config.shift is None or not baseline.continuous or vocabulary:
            return None
        return baseline.shift_test(self.config.shift)
