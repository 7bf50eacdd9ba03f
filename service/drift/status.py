"""The verdict: statistics → ok/warning/drift for one check, and the hysteresis that keeps a status from flapping."""

from __future__ import annotations

from collections import deque

from service.drift.config import LEVELS, Limit
from service.drift.stats import Statistics

PENDING = "pending"  # fewer live scores than min_samples, or no baseline yet: no verdict
GATE = "ks_pvalue"


def level(stats: Statistics | dict[str, float], limits: dict[str, Limit], scale: float = 1.0) -> int:
    """The highest level whose KS p-value gate and at least one distance threshold are both crossed.

    The p-value says the change is real (not sampling noise); a distance says it is big enough to matter.
    `scale` < 1 relaxes every threshold: that is how a raised status is held (hysteresis).
    """
    values = stats if isinstance(stats, dict) else stats.as_dict()
    for lvl in range(len(LEVELS) - 1, 0, -1):
        if limits[GATE].severity(values[GATE], lvl) < scale:
            continue
        if any(limit.severity(values[name], lvl) >= scale for name, limit in limits.items() if name != GATE):
            return lvl
    return 0


class StatusTracker:
    """A status that rises after `confirm` consecutive checks agree and falls after `clear` checks agree.

    Each check brings two levels: `enter` (plain thresholds) and `hold` (thresholds relaxed by the hysteresis).
    Rising needs every one of the last `confirm` enter levels at the new level; falling needs every one of the
    last `clear` hold levels below the current one. The first verdict after `pending` is `ok` unless the
    history already confirms more.
    """

    def __init__(self, confirm: int, clear: int, status: str = PENDING, recent: list[list[int]] | None = None):
        self.confirm, self.clear = confirm, clear
        self.status = status
        self.recent: deque[tuple[int, int]] = deque(((r[0], r[1]) for r in recent or []), maxlen=max(confirm, clear))

    @property
    def rank(self) -> int:
        return -1 if self.status == PENDING else LEVELS.index(self.status)

    def step(self, enter: int, hold: int) -> tuple[str, str] | None:
        """Record one check; return (old, new) when the status changes."""
        self.recent.append((enter, hold))
        history = list(self.recent)
        up = min(e for e, _ in history[-self.confirm :]) if len(history) >= self.confirm else 0
        new = self.rank
        if up > new:
            new = up
        elif len(history) >= self.clear:
            new = min(new, max(h for _, h in history[-self.clear :]))
        if new == self.rank:
            return None
        old, self.status = self.status, LEVELS[new]
        return old, self.status

    def reset(self) -> None:
        """Back to no verdict, e.g. when the baseline is replaced."""
        self.status = PENDING
        self.recent.clear()

    def state(self) -> dict[str, object]:
        return {"status": self.status, "recent": [list(r) for r in self.recent]}
