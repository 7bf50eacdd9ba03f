"""Kept live texts (opt-in: O2V_DRIFT_KEEP_TEXTS), so that a verdict's traffic can become training material.

Texts may be personal data: off by default, at most `max_count` texts and `max_count` pairs kept and none older
than `max_age_s`, in memory only (never in the state file; a restart forgets them), and read only by API-key
holders (GET /drift/export). Pairs (/similarity) keep their token ids beside the texts, so that the export is an
Object2Vec channel (`in0`, `in1`, `label`) `o2v train` reads as it is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from service.drift.baseline import iso

PairRows = tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]]
"""The token ids of a request's pairs: every pair's first text, then every pair's second text."""


class TextKeeper:
    """The most recent tokenized texts with their vocabulary rates, and the most recent scored pairs with their
    stream, each bounded by count and age."""

    def __init__(self, max_count: int, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.max_age_s, self.clock = max_age_s, clock
        self.lock = threading.Lock()
        self.items: deque[tuple[float, str, dict[str, float]]] = deque(maxlen=max_count)
        self.pairs: deque[tuple[float, str, dict[str, Any]]] = deque(maxlen=max_count)

    def keep(self, texts: Sequence[str], values: dict[str, list[float]]) -> None:
        """`values` holds one list per rate, aligned with `texts`."""
        now = self.clock()
        with self.lock:
            for i, text in enumerate(texts):
                self.items.append((now, text, {name: v[i] for name, v in values.items() if i < len(v)}))

    def keep_pairs(
        self, stream: str, pairs: Sequence[tuple[str, str]], rows: PairRows, scores: Sequence[float]
    ) -> None:
        """One request's pairs, the token ids of each side (as encoder 0 read them) and their scores."""
        now = self.clock()
        with self.lock:
            for (a, b), in0, in1, score in zip(pairs, *rows, scores, strict=True):
                ids0, ids1 = [int(i) for i in in0], [int(i) for i in in1]
                pair = {"label": float(score), "in0": ids0, "in1": ids1, "text0": a, "text1": b}
                self.pairs.append((now, stream, pair))

    def recent(self) -> list[dict[str, Any]]:
        """Every kept text not older than max_age_s, oldest first (older ones are forgotten now)."""
        with self.lock:
            self._forget(self.items)
            return [{"text": text, **rates, "at": iso(at)} for at, text, rates in self.items]

    def recent_pairs(self, stream: str) -> list[dict[str, Any]]:
        """The stream's kept pairs not older than max_age_s, oldest first: `label` is the live score (the model's
        own, to be replaced by a human or teacher label before training), in0/in1 the token ids, and the texts."""
        with self.lock:
            self._forget(self.pairs)
            return [{**pair, "at": iso(at)} for at, name, pair in self.pairs if name == stream]

    def _forget(self, kept: deque[Any]) -> None:
        cutoff = self.clock() - self.max_age_s
        while kept and kept[0][0] < cutoff:
            kept.popleft()
