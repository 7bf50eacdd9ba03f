"""The checking thread's CPU budget as a token bucket: credit accrues at `share` CPU seconds per wall second, up to
`burst_s`; a round spends the CPU seconds it took; the thread rests only while its credit is below zero.

A rest in proportion to every round (t·(1/share − 1) after a round of t seconds) made a check that came due during
it wait, even at low traffic where the monitor is far below its share: one MMD test (≈ 0.15 s) held the next
checks for 1.35 s. With the bucket, traffic that leaves the checks under their share never waits for the budget,
and sustained work is still held to `share` of a core over any stretch longer than `burst_s / share`."""

from __future__ import annotations

import time
from collections.abc import Callable


class CpuBudget:
    """Not thread-safe: the checking thread alone spends it. `clock`: wall seconds (a test's hook)."""

    def __init__(self, share: float, burst_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0.0 < share <= 1.0 or burst_s < 0.0:
            raise ValueError(f"a CPU budget needs 0 < share ≤ 1 and burst_s ≥ 0, not {share}, {burst_s}")
        self.share, self.burst_s, self.clock = share, burst_s, clock
        self.credit = burst_s  # a fresh thread may use its whole burst: the first checks run at once
        self._at = clock()

    def spend(self, cpu_s: float) -> float:
        """Charge a round that took `cpu_s` CPU seconds; returns the seconds to rest (0.0 while credit remains),
        after which the credit is back at zero."""
        now = self.clock()
        self.credit = min(self.burst_s, self.credit + self.share * (now - self._at)) - cpu_s
        self._at = now
        return -self.credit / self.share if self.credit < 0.0 else 0.0
