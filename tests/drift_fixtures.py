"""Small drift-monitor configurations, model cards and score samples the drift tests build for themselves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.drift import DriftConfig, DriftMonitor
from service.drift import config as drift_config
from service.drift.notify import StatusNotifier
from service.drift.store import DriftStore
from service.settings import Settings


def config(**overrides: Any) -> DriftConfig:
    """The settings' drift defaults with `overrides` by short name (window=… for O2V_DRIFT_WINDOW); a name that is
    no setting sets the DriftConfig field (confirm_checks=…), the shift test's (shift_simulations=…) or a limit's
    (ks_pvalue_drift=…) instead: the constants tests vary."""
    flat = Settings.flat_defaults()
    built = DriftConfig.from_settings(
        Settings(**{f"drift_{k}": v for k, v in overrides.items() if f"drift_{k}" in flat})
    )
    fixed = {k: v for k, v in overrides.items() if f"drift_{k}" not in flat}
    shift = {k.removeprefix("shift_"): fixed.pop(k) for k in list(fixed) if k.startswith("shift_")}
    if shift.get("window") == 0:  # the shift test off, as bench.drift's windows_only
        fixed["shift"] = None
    elif shift and built.shift is not None:
        fixed["shift"] = replace(built.shift, **shift)
    for name, limit in built.limits.items():
        levels = {level: fixed.pop(f"{name}_{level}") for level in ("warning", "drift") if f"{name}_{level}" in fixed}
        if levels:
            fixed["limits"] = {**fixed.get("limits", built.limits), name: replace(limit, **levels)}
    return replace(built, **fixed)


def set_constants(monkeypatch: pytest.MonkeyPatch, **constants: Any) -> None:
    """Drift constants (service/drift/config.py: EMBED_WINDOW=…) changed for one test: an app built meanwhile reads
    them into its DriftConfig, as it reads the O2V_DRIFT_* settings."""
    for name, value in constants.items():
        assert hasattr(drift_config, name), name
        monkeypatch.setattr(drift_config, name, value)


FAST = config(window=200, min_samples=50, check_every=10, confirm_checks=2, clear_checks=3)


def scores(n: int, mean: float = 0.5, std: float = 0.1, seed: int = 0) -> list[float]:
    return np.random.default_rng(seed).normal(mean, std, n).tolist()


def card(n: int = 400, mean: float = 0.5, std: float = 0.1, name: str = "test-model") -> dict[str, Any]:
    """A model card with a validation score distribution, as service/object2vec/export.py writes it."""
    return {
        "name": name,
        "created": "2026-01-01T00:00:00Z",
        "hyperparameters": {"dropout": "0.0", "weight_decay": "0.0"},
        "validation_score_distribution": {"n": n, "scores": scores(n, mean, std, seed=99)},
    }


def monitor(
    folder: Path | None = None,
    config: DriftConfig = FAST,
    model_card: dict[str, Any] | None = None,
    notifier: StatusNotifier | None = None,
) -> DriftMonitor:
    store = DriftStore(folder) if folder is not None else None
    return DriftMonitor(config, card() if model_card is None else model_card, store, notifier)


def pay_first_checks() -> None:
    """A process' first checks import scipy.stats and simulate the card's limits (about 0.8 s together): a test that
    times checks, or counts the rounds a worker runs while it records, pays that here first, with a monitor of its
    own; otherwise it passes or fails by whether an earlier test in the process already paid it."""
    feed(monitor(), "similarity", scores(70, mean=0.8))


def feed(m: DriftMonitor, stream: str, values: list[float], chunk: int | None = None) -> list[str]:
    """Record `values` in chunks of check_every, running the due checks after each; the statuses seen."""
    step = chunk or m.config.check_every
    seen = []
    for i in range(0, len(values), step):
        m.record_many(stream, values[i : i + step])
        m.run_due_checks()
        seen.append(m.stream_report(stream)["status"])
    return seen
