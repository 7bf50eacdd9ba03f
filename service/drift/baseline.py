"""A stream's reference distribution: the served model's validation scores, an upload, or a first live window."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service.drift.stats import quantile_edges, summary

MIN_BASELINE = 10


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class Baseline:
    """Scores plus where they came from; the PSI/JS bin edges and the summary are computed once."""

    scores: np.ndarray
    source: str
    created: float
    bins: int
    edges: np.ndarray = field(init=False)
    described: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.scores = np.sort(np.asarray(self.scores, dtype=np.float64))
        self.edges = quantile_edges(self.scores, self.bins)
        self.described = {"source": self.source, "created": iso(self.created), **summary(self.scores)}

    @classmethod
    def of(cls, scores: Iterable[float], source: str, bins: int, created: float | None = None) -> Baseline:
        """Validate and build: at least MIN_BASELINE finite scores."""
        arr = np.asarray(list(scores), dtype=np.float64)
        if arr.ndim != 1 or arr.size < MIN_BASELINE:
            raise ValueError(f"a baseline needs at least {MIN_BASELINE} scores, got {arr.size}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("baseline scores must be finite numbers")
        return cls(arr, source, created if created is not None else time.time(), bins)

    def state(self) -> dict[str, Any]:
        return {"scores": [round(float(s), 7) for s in self.scores], "source": self.source, "created": self.created}

    @classmethod
    def restore(cls, state: dict[str, Any], bins: int) -> Baseline:
        return cls.of(state["scores"], state["source"], bins, state.get("created"))


def card_baseline(card: dict[str, Any], bins: int) -> Baseline | None:
    """The validation score distribution the model card carries (its raw `scores`), or None without one."""
    dist = card.get("validation_score_distribution") or {}
    scores = [s for s in dist.get("scores") or [] if isinstance(s, int | float) and math.isfinite(s)]
    if len(scores) < MIN_BASELINE:
        return None
    name = card.get("name", "model")
    return Baseline.of(scores, f"model_card:{name}:validation", bins, created=_card_time(card))


def _card_time(card: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(card.get("created")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
