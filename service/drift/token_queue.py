"""Tokenized requests waiting for the checking thread, which turns them into the token streams' per-text rates."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

from service.drift.texts import TextKeeper
from service.drift.tokens import TokenRates

Request = tuple[Sequence[str] | None, list[list[int]], list[int]]
"""(the texts, kept only with O2V_DRIFT_KEEP_TEXTS; the token rows, cut; the lengths before the cut)"""


class TokenQueue:
    """At most `size` requests wait: a full queue drops the oldest (counted in `dropped`). Putting one is O(1), so
    the request path never computes a rate."""

    def __init__(self, rates: TokenRates, size: int, window: int, check_every: int, interval_s: float) -> None:
        self.rates, self.window, self.check_every, self.interval_s = rates, window, check_every, interval_s
        self.requests: deque[Request] = deque(maxlen=size)
        self.dropped = 0
        self._queued_texts = 0
        self._drained_at = -math.inf  # time.monotonic() of the last paced drain

    def put(self, texts: Sequence[str] | None, rows: list[list[int]], lengths: list[int]) -> bool:
        """Queue one request; True when this one brought the waiting texts to `check_every`: wake the checker,
        which drains them at their `turn`."""
        if len(self.requests) == self.requests.maxlen:
            self.dropped += 1
        self.requests.append((texts, rows, lengths))
        before, self._queued_texts = self._queued_texts, self._queued_texts + len(rows)
        return before < self.check_every <= self._queued_texts

    def turn(self, now: float) -> float:
        """Seconds until the checker drains the queue again: once per check interval, so at saturation the
        per-text rates are computed for at most a queue's worth of requests per interval (a sample; the rest are
        counted in `dropped`), not for every request."""
        return max(self._drained_at + self.interval_s - now, 0.0)

    def drain(self, now: float, record: Callable[[str, list[float]], object], keeper: TextKeeper | None = None) -> None:
        """Turn the queued rows into the per-text values and `record` them, oldest first: at most a window's worth
        of texts per drain, the newest requests; older ones are a sample left out (counted in `dropped`), since a
        window holds no more and the work would grow with traffic. `keeper` keeps the texts with their values."""
        self._drained_at, self._queued_texts = now, 0
        taken: list[Request] = []
        room = self.window
        while self.requests:
            try:
                request = self.requests.pop()
            except IndexError:  # taken meanwhile
                break
            if room <= 0:
                self.dropped += 1
                continue
            taken.append(request)
            room -= len(request[1])
        for texts, rows, lengths in reversed(taken):
            values = self.rates.rates(rows, lengths)
            for name, per_text in values.items():
                if per_text:
                    record(name, per_text)
            if texts is not None and keeper is not None:
                keeper.keep(texts, values)
