"""One named score stream: a bounded live window, time-bucketed history and score-bucket counts, appended in O(1)."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

import numpy as np

SCORE_EDGES = tuple(round(-1.0 + 0.05 * i, 2) for i in range(1, 41))
"""Upper edges (Prometheus `le`) of the fixed score buckets, -0.95 … 1.0, and +Inf after them: the same on every
replica, so Prometheus can add their counts. 0.05 wide: the L∞ distance read at these edges is within about 0.01 of
the exact one for cosine-like scores (README, drift across replicas)."""


def finite_scores(scores: Iterable[float]) -> tuple[list[float], int]:
    """The scores that are finite numbers, and how many others there were."""
    values, bad = [], 0
    for s in scores:
        try:
            v = float(s)
        except (TypeError, ValueError):
            v = math.nan
        if math.isfinite(v):
            values.append(v)
        else:
            bad += 1
    return values, bad


class ScoreStream:
    """The last `window` scores and, per `bucket_seconds`, count/mean/min/max for the last `buckets` buckets.

    Recording does no statistics: O(1) work per score under an uncontended lock, so a request never waits.
    """

    def __init__(self, name: str, window: int, bucket_seconds: int, buckets: int) -> None:
        self.name = name
        self.bucket_seconds = bucket_seconds
        self.lock = threading.Lock()
        self.scores: deque[float] = deque(maxlen=window)
        self.total = 0  # scores ever recorded, the clock that schedules checks
        self.history: deque[list[float]] = deque(maxlen=buckets)  # [start, n, sum, min, max]
        self.counts = [0] * (len(SCORE_EDGES) + 1)  # scores ever recorded by this process, per score bucket

    def record(self, scores: Sequence[float], now: float) -> int:
        """Append scores (one request's, all in the current bucket); return the running total."""
        start = float(int(now // self.bucket_seconds) * self.bucket_seconds)
        with self.lock:
            self.scores.extend(scores)
            self.total += len(scores)
            last = self.history[-1] if self.history else None
            if last is None or last[0] != start:
                last = [start, 0, 0.0, math.inf, -math.inf]
                self.history.append(last)
            last[1] += len(scores)
            last[2] += math.fsum(scores)
            last[3] = min(last[3], *scores)
            last[4] = max(last[4], *scores)
            for score in scores:
                self.counts[bisect_left(SCORE_EDGES, score)] += 1
            return self.total

    def window(self) -> np.ndarray:
        with self.lock:
            return np.fromiter(self.scores, dtype=np.float64, count=len(self.scores))

    def between(self, start: int, end: int) -> np.ndarray:
        """The scores numbered [start, end) by the running total that are still in the window."""
        with self.lock:
            first = self.total - len(self.scores)  # the number of the window's oldest score
            lo, hi = max(start, first) - first, max(min(end, self.total), first) - first
            return np.fromiter(islice(self.scores, lo, hi), dtype=np.float64, count=max(hi - lo, 0))

    def take_first(self, n: int) -> np.ndarray:
        """The window's oldest `n` scores, removed from it (they become a learned baseline)."""
        with self.lock:
            return np.array([self.scores.popleft() for _ in range(min(n, len(self.scores)))], dtype=np.float64)

    def score_counts(self) -> list[int]:
        """Per score bucket (SCORE_EDGES, then +Inf), how many scores this process recorded."""
        with self.lock:
            return list(self.counts)

    def buckets(self) -> list[dict[str, float]]:
        with self.lock:
            rows = [list(b) for b in self.history]
        return [{"start": b[0], "n": int(b[1]), "mean": round(b[2] / b[1], 6), "min": b[3], "max": b[4]} for b in rows]

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"scores": list(self.scores), "total": self.total, "history": [list(b) for b in self.history]}

    def restore(self, state: dict[str, Any]) -> None:
        with self.lock:
            self.scores.extend(float(s) for s in state.get("scores", []) if math.isfinite(s))
            self.total = int(state.get("total", len(self.scores)))
            self.history.extend([float(v) for v in b] for b in state.get("history", []))
