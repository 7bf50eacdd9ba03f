"""Kept live texts (opt-in: O2V_DRIFT_KEEP_TEXTS), so that a verdict's traffic can become training material.

Texts may be personal data: off by default, at most `max_count` kept and none older than `max_age_s`, in memory
only (never in the state file; a restart forgets them), and read only by API-key holders (GET /drift/export).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from service.drift.baseline import iso


class TextKeeper:
    """The most recent tokenized texts with their vocabulary rates, bounded by count and age."""

    def __init__(self, max_count: int, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.max_age_s, self.clock = max_age_s, clock
        self.lock = threading.Lock()
        self.items: deque[tuple[float, str, dict[str, float]]] = deque(maxlen=max_count)

    def keep(self, texts: Sequence[str], values: dict[str, list[float]]) -> None:
        """`values` holds one list per rate, aligned with `texts`."""
        now = self.clock()
        with self.lock:
            for i, text in enumerate(texts):
                self.items.append((now, text, {name: v[i] for name, v in values.items() if i < len(v)}))

    def recent(self) -> list[dict[str, Any]]:
        """Every kept text not older than max_age_s, oldest first (older ones are forgotten now)."""
        cutoff = self.clock() - self.max_age_s
        with self.lock:
            while self.items and self.items[0][0] < cutoff:
                self.items.popleft()
            return [{"text": text, **rates, "at": iso(at)} for at, text, rates in self.items]
