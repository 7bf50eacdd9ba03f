"""The drift monitor's knobs as one plain object: the O2V_DRIFT_* settings (`Settings.drift`) and the constants below.

The constants were settings once; they are research results, not deployment choices (docs/drift.md, "Defaults and
why", has the measurements). Their former O2V_DRIFT_* names are still accepted, with a warning that names the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from service.drift.shift import ShiftParams
from service.settings import DriftSettings, Levels, Settings

LEVELS = ("ok", "warning", "drift")


@dataclass(frozen=True)
class Limit:
    """A test's warning and drift thresholds; for a p-value a smaller value is worse."""

    warning: float
    drift: float
    smaller_is_worse: bool = False

    def threshold(self, level: int) -> float:
        return self.drift if level == LEVELS.index("drift") else self.warning

    def severity(self, value: float, level: int) -> float:
        """How far `value` is toward the level's threshold: ≥ 1 means crossed.

        p-values compare on a log scale, so a hysteresis factor of 0.8 lets a p of 0.01 hold until about 0.025.
        """
        threshold = self.threshold(level)
        if self.smaller_is_worse:
            return math.log(max(value, 1e-300)) / math.log(threshold)
        return value / threshold

    def as_dict(self) -> dict[str, float]:
        return {"warning": self.warning, "drift": self.drift}


CHECK_INTERVAL_S = 1.0
"""A score stream is checked at most once per second, whatever the traffic: with CPU_BUDGET this bounds the cost in
time; at 10 requests/s the count condition (check_every) comes due later anyway, so detection is unchanged."""
CONFIRM_CHECKS = 2
"""Consecutive checks (≥ check_every new scores apart) that must agree to raise a status: no flapping."""
CLEAR_CHECKS = 3
"""Consecutive checks needed to lower a status: slower down than up, so one quiet check does not clear a drift."""
HYSTERESIS = 0.2
"""A raised status holds until its statistic is back under 80 % of the limit."""
KS_PVALUE = Limit(warning=0.05, drift=0.0002, smaller_is_worse=True)
"""The KS p-value gate of the window tests (Model Monitor's robust comparison is a KS test). It sets the window
tests' share of the false alarms: at 0.01 one check on 100 scores raised drift 1.15 % of the time, at 0.005 2.2 %
of 400 normal runs of 5000 scores ended in drift; 0.0002 keeps the design's ≤ 1 % of long normal runs."""
PSI_BINS = 10
"""Deciles of the baseline for PSI and Jensen-Shannon: every bin holds 10 % of it, none is empty by construction."""
BUCKET_SECONDS = 300
"""Width of one history bucket (5 minutes)."""
HISTORY_BUCKETS = 288
"""History buckets kept per stream: 288 × 5 minutes = one day, bounded memory and state file."""
WEBHOOK_TIMEOUT_S = 2.0
"""Limit of one status webhook call: a slow receiver must not hold the checking thread."""
WEBHOOK_RETRIES = 3
"""Webhook retries after the first call, with backoff."""
SHIFT_HORIZON = 5000
"""Normal run length the shift test's false-alarm rate is for: the benchmark's run length, for which the design's
target (≤ 1 % of long normal runs ever in drift) is stated."""
SHIFT_WARNING_FALSE_ALARM = 0.05
"""Share of normal runs of SHIFT_HORIZON scores ever raised to warning by the shift test."""
SHIFT_SIMULATIONS = 10_000
"""Simulated runs behind the shift test's limits: 10,000 put about 20 beyond the 0.2 % limit; with 1,000 at 0.5 % the
limit moved by ±0.1 |z| between seeds, and a limit set low by chance raises every stream sharing it (~0.4 s)."""
SHIFT_CLIP = 4.0
"""The efficient score ψ is clipped at mean ± 4 sd: one extreme score cannot decide a window."""
CLASSIFY_REFERENCE_MAX = 2000
"""Collection items classified leave-one-out as a classify stream's reference: 2,000 put 200 in each calibration bin
(its accuracy within ±3.5 points at 95 %), one kNN search each, once."""
LABEL_MIN_COUNT = 20
"""Live classify answers before labels are ranked: fewer rank nothing."""
LABEL_ALPHA = 0.002
"""Family-wise p-value (Bonferroni) below which a label is `moved`: the level the ranking used before the KS drift
gate moved to 0.0002."""
TOKEN_MARGIN = Limit(warning=0.02, drift=0.05)
"""Rise of a token stream's mean unseen-token rate that counts, with the KS gate: 5 more unseen tokens in 100 is
drift (STS-B test sentences have 4.4 % unseen against dev's 2.9 %: a real difference, not a risk)."""
TOKEN_QUEUE = 1000
"""Requests' token rows waiting for the checking thread; a burst beyond it loses the oldest (counted), never blocks."""
EMBED_CHECK_INTERVAL_S = 5.0
"""A route family's MMD test runs at most once per 5 s (one test ≈ 0.15 s)."""
EMBED_PERMUTATIONS = 200
"""Permutations behind the MMD p-value: 200 resolve p down to 0.005, below EMBED_PVALUE's drift level."""
EMBED_PVALUE = Limit(warning=0.05, drift=0.01, smaller_is_worse=True)
"""MMD p-values below which an embedding test warns or drifts (above 1 / (EMBED_PERMUTATIONS + 1))."""
CPU_BUDGET = 0.1
"""Share of wall time the checking thread may work, as a token bucket (`budget.CpuBudget`): credit accrues at 0.1 CPU
second per second and a round spends its CPU time, so at saturation the monitor costs at most a tenth of one core
whatever the traffic (docs/drift.md, "Cost bounded in time")."""
CPU_BURST_S = 2.0
"""The bucket's cap in CPU seconds: the MMD tests of all seven route families at once (7 × ≈ 0.15 s) with room to
spare, so a check that comes due at low traffic never waits for the budget; at most 2 s of a core above the share
after an idle spell (20 s of credit at 0.1)."""
PERSIST_INTERVAL_S = 30.0
"""Seconds between writes of the drift state (and one on shutdown): a crash loses at most 30 s of scores, which the
next 30 s of traffic replace; uploaded baselines are written before their PUT answers."""
SHIFT_FALSE_ALARM = 0.002
"""Share of normal runs of SHIFT_HORIZON scores the shift test ever raises to drift: the design's ≤ 1 % of long normal
runs, split with the window tests (below SHIFT_WARNING_FALSE_ALARM, 0.05)."""
SHIFT_REFERENCE_MAX = 20_000
"""Live scores from `ok` checks the shift test's reference absorbs: past 20,000 the reference's own error is below a
tenth of a window's, so more only costs memory (docs/drift.md, "The shift test")."""
MAX_LABELS = 50
"""Classify labels tracked one by one; the rest share the row `(other)`: bounded memory and /metrics cardinality."""
SHIFT_WINDOW = 500
"""Recent scores the shift test looks at (a smaller O2V_DRIFT_WINDOW caps it): the detection target is "within 500
scores", so a window of that length is fully shifted when the target is due; 250 had more noise for the same
false-alarm rate. bench.drift's `windows_only` turns the test off through the config (`shift=None`)."""
LIVE_BASELINE_STREAMS = ("search_top1", "classify_confidence")
"""Streams that learn their own baseline whatever O2V_DRIFT_BASELINE says: their scores are not pair cosines, so the
model card's validation distribution is not theirs."""
LEARN_WARMUP = 100
"""First live scores of a stream ignored when it learns its baseline (often smoke tests); at most the window minus
10, so a smaller O2V_DRIFT_WINDOW shrinks it."""
LEARN_SIZE = 500
"""Live scores after the warm-up that become a learned baseline: 500 hold its sampling error to about a third of a
1500-score card's; warm-up and size fit in the window, where the learned scores wait (a smaller window shrinks it)."""
EMBED_WINDOW = 500
"""Live embeddings per route family, and the reference's size: the model directory's embedding sample holds 500, and
one test is then a 1000×1000 kernel matrix (≈ 0.15 s, 8 MB)."""
EMBED_MIN_SAMPLES = 100
"""Live embeddings of a family before its first MMD test (a fifth of EMBED_WINDOW): fewer give the test too little
power for a verdict worth showing."""


SHIFT_CONSTANTS: dict[str, Any] = {
    "horizon": SHIFT_HORIZON,
    "false_alarm": SHIFT_FALSE_ALARM,
    "warning_false_alarm": SHIFT_WARNING_FALSE_ALARM,
    "simulations": SHIFT_SIMULATIONS,
    "clip": SHIFT_CLIP,
    "confirm": CONFIRM_CHECKS,
    "reference_max": SHIFT_REFERENCE_MAX,
}
"""The shift test's parameters that are constants (ShiftParams' other three come from the settings)."""


def limit(levels: Levels) -> Limit:
    return Limit(levels.warning, levels.drift)


@dataclass(frozen=True, kw_only=True)
class DriftConfig:
    """`Settings.drift` with the constants above and what follows from them; `from_settings` builds it. Fields
    named like a DriftSettings field are that field; the others are derived or constant (tests override them)."""

    window: int
    min_samples: int
    check_every: int
    check_interval_s: float = CHECK_INTERVAL_S  # the worker checks a stream at most this often, whatever the traffic
    cpu_budget: float = CPU_BUDGET  # share of wall time the checking thread may work
    cpu_burst_s: float = CPU_BURST_S  # the budget's credit cap (CPU seconds)
    confirm_checks: int = CONFIRM_CHECKS
    clear_checks: int = CLEAR_CHECKS
    hysteresis: float = HYSTERESIS
    limits: dict[str, Limit]
    psi_bins: int = PSI_BINS
    bucket_seconds: int = BUCKET_SECONDS
    history_buckets: int = HISTORY_BUCKETS
    max_streams: int
    streams: tuple[str, ...]  # configured: they exist from the start, like the built-in ones
    live_baseline_streams: tuple[str, ...]
    persist_interval_s: float = PERSIST_INTERVAL_S
    webhook_url: str | None
    webhook_timeout_s: float = WEBHOOK_TIMEOUT_S
    webhook_retries: int = WEBHOOK_RETRIES
    shift: ShiftParams | None  # None: the shift test is off (bench.drift's windows_only)
    learn: bool  # O2V_DRIFT_BASELINE=learn: every stream without an uploaded baseline learns its own
    learn_warmup: int
    learn_size: int  # warm-up + size fit in the window, which is where the learned scores wait
    accuracy_fall: Limit  # a classify scope's estimated accuracy below what its label mix should get
    max_labels: int = MAX_LABELS
    label_min_count: int = LABEL_MIN_COUNT
    label_alpha: float = LABEL_ALPHA
    token_queue: int = TOKEN_QUEUE
    token_margin: Limit = TOKEN_MARGIN  # rise of a token stream's mean rate (share points) that counts, with KS
    keep_texts: int  # 0: off (O2V_DRIFT_KEEP_TEXTS false), else at most this many
    keep_texts_max_age_s: float
    embed_window: int
    embed_min_samples: int
    embed_check_every: int
    embed_check_interval_s: float = EMBED_CHECK_INTERVAL_S
    embed_permutations: int = EMBED_PERMUTATIONS
    embed_limit: Limit = field(default=EMBED_PVALUE)  # a permutation p-value cannot fall below 1 / (permutations + 1)

    @classmethod
    def from_settings(cls, s: Settings) -> DriftConfig:
        return cls.from_group(s.drift)

    @classmethod
    def from_group(cls, g: DriftSettings) -> DriftConfig:
        """The group's fields of the same name as they are (their validator already refused contradictions); the
        rest derived from it."""
        derived = {"streams", "keep_texts"}
        names = DriftSettings.model_fields.keys() - derived
        same = {f.name: getattr(g, f.name) for f in fields(cls) if f.name in names}
        t = g.thresholds
        shift = ShiftParams(
            window=min(SHIFT_WINDOW, g.window), min_samples=g.min_samples, check_every=g.check_every, **SHIFT_CONSTANTS
        )
        warmup = min(LEARN_WARMUP, g.window - 10)
        return cls(
            **same,
            limits={
                "ks_pvalue": KS_PVALUE,
                "linf": limit(t.linf),
                "psi": limit(t.psi),
                "js": limit(t.js),
                "wasserstein_norm": limit(t.wasserstein),
            },
            streams=tuple(g.streams),
            live_baseline_streams=LIVE_BASELINE_STREAMS,
            shift=shift,
            learn=g.baseline == "learn",
            learn_warmup=warmup,
            learn_size=min(LEARN_SIZE, g.window - warmup),
            accuracy_fall=limit(t.accuracy_fall),
            keep_texts=g.keep_texts.max if g.keep_texts.enabled else 0,
            keep_texts_max_age_s=g.keep_texts.max_age_s,
            embed_window=EMBED_WINDOW,
            embed_min_samples=EMBED_MIN_SAMPLES,
        )

    def public(self) -> dict[str, Any]:
        """What GET /drift shows of the configuration (no webhook address: it may carry a token)."""
        return {
            "window": self.window,
            "min_samples": self.min_samples,
            "check_every": self.check_every,
            "check_interval_s": self.check_interval_s,
            "cpu_budget": self.cpu_budget,
            "confirm_checks": self.confirm_checks,
            "clear_checks": self.clear_checks,
            "hysteresis": self.hysteresis,
            "psi_bins": self.psi_bins,
            "thresholds": {name: limit.as_dict() for name, limit in self.limits.items()},
            "webhook": self.webhook_url is not None,
            "baseline": "learn" if self.learn else "card",
            "keep_texts": self.keep_texts,
            "learn": {"warmup": self.learn_warmup, "size": self.learn_size},
            "shift_test": None
            if self.shift is None
            else {
                "window": self.shift.window,
                "horizon": self.shift.horizon,
                "false_alarm": self.shift.false_alarm,
                "warning_false_alarm": self.shift.warning_false_alarm,
                "reference_max": self.shift.reference_max,
            },
        }
