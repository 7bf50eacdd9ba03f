"""The drift monitor's knobs as one plain object, read from the O2V_DRIFT_* settings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from service.drift.shift import ShiftParams
from service.settings import Settings

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


@dataclass(frozen=True)
class DriftConfig:
    """Built from the settings (`from_settings`), which hold every default and its reason."""

    window: int
    min_samples: int
    check_every: int
    check_interval_s: float  # the worker checks a stream at most this often, whatever the traffic
    cpu_budget: float  # share of wall time the checking thread may work
    confirm_checks: int
    clear_checks: int
    hysteresis: float
    limits: dict[str, Limit]
    psi_bins: int
    bucket_seconds: int
    history_buckets: int
    max_streams: int
    streams: tuple[str, ...]  # configured: they exist from the start, like the built-in ones
    live_baseline_streams: tuple[str, ...]
    persist_interval_s: float
    webhook_url: str | None
    webhook_timeout_s: float
    webhook_retries: int
    shift: ShiftParams | None  # None: the shift test is off (O2V_DRIFT_SHIFT_WINDOW=0)
    learn: bool  # O2V_DRIFT_BASELINE=learn: every stream without an uploaded baseline learns its own
    learn_warmup: int
    learn_size: int  # warm-up + size fit in the window, which is where the learned scores wait
    accuracy_fall: Limit  # a classify scope's estimated accuracy below what its label mix should get
    max_labels: int
    label_min_count: int
    label_alpha: float
    token_queue: int
    token_margin: Limit  # rise of a token stream's mean rate (share points) that counts, with the KS gate
    keep_texts: int  # 0: off (O2V_DRIFT_KEEP_TEXTS false), else at most this many
    keep_texts_max_age_s: float
    embed_window: int
    embed_min_samples: int
    embed_check_every: int
    embed_check_interval_s: float
    embed_permutations: int
    embed_limit: Limit  # the MMD p-value's own: a permutation p-value cannot fall below 1 / (permutations + 1)

    @classmethod
    def from_settings(cls, s: Settings) -> DriftConfig:
        """Read the `drift_*` fields of the settings."""
        limits = {
            "ks_pvalue": Limit(s.drift_ks_pvalue_warning, s.drift_ks_pvalue_drift, smaller_is_worse=True),
            "linf": Limit(s.drift_linf_warning, s.drift_linf_drift),
            "psi": Limit(s.drift_psi_warning, s.drift_psi_drift),
            "js": Limit(s.drift_js_warning, s.drift_js_drift),
            "wasserstein_norm": Limit(s.drift_wasserstein_warning, s.drift_wasserstein_drift),
        }
        min_samples = min(s.drift_min_samples, s.drift_window)
        shift = None
        if s.drift_shift_window:
            shift = ShiftParams(
                window=min(s.drift_shift_window, s.drift_window),
                horizon=s.drift_shift_horizon,
                false_alarm=s.drift_shift_false_alarm,
                warning_false_alarm=max(s.drift_shift_warning_false_alarm, s.drift_shift_false_alarm),
                simulations=s.drift_shift_simulations,
                clip=s.drift_shift_clip,
                min_samples=min_samples,
                check_every=s.drift_check_every,
                confirm=s.drift_confirm_checks,
                reference_max=s.drift_shift_reference_max,
            )
        warmup = min(s.drift_learn_warmup, s.drift_window - 10)
        return cls(
            window=s.drift_window,
            min_samples=min_samples,
            check_every=s.drift_check_every,
            check_interval_s=s.drift_check_interval_s,
            cpu_budget=s.drift_cpu_budget,
            confirm_checks=s.drift_confirm_checks,
            clear_checks=s.drift_clear_checks,
            hysteresis=s.drift_hysteresis,
            limits=limits,
            psi_bins=s.drift_psi_bins,
            bucket_seconds=s.drift_bucket_seconds,
            history_buckets=s.drift_history_buckets,
            max_streams=s.drift_max_streams,
            streams=tuple(s.drift_streams),
            live_baseline_streams=tuple(s.drift_live_baseline_streams),
            persist_interval_s=s.drift_persist_interval_s,
            webhook_url=s.drift_webhook_url,
            webhook_timeout_s=s.drift_webhook_timeout_s,
            webhook_retries=s.drift_webhook_retries,
            shift=shift,
            learn=s.drift_baseline == "learn",
            learn_warmup=warmup,
            learn_size=min(s.drift_learn_size, s.drift_window - warmup),
            accuracy_fall=Limit(s.drift_accuracy_fall_warning, s.drift_accuracy_fall_drift),
            max_labels=s.drift_max_labels,
            label_min_count=s.drift_label_min_count,
            label_alpha=s.drift_label_alpha,
            token_queue=s.drift_token_queue,
            token_margin=Limit(s.drift_token_margin_warning, s.drift_token_margin_drift),
            keep_texts=s.drift_keep_texts_max if s.drift_keep_texts else 0,
            keep_texts_max_age_s=s.drift_keep_texts_max_age_s,
            embed_window=s.drift_embed_window,
            embed_min_samples=min(s.drift_embed_min_samples, s.drift_embed_window),
            embed_check_every=s.drift_embed_check_every,
            embed_check_interval_s=s.drift_embed_check_interval_s,
            embed_permutations=s.drift_embed_permutations,
            embed_limit=Limit(s.drift_embed_pvalue_warning, s.drift_embed_pvalue_drift, smaller_is_worse=True),
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
