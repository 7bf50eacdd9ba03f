"""What the runner and the locustfile share, kept free of locust: importing locust monkey-patches the standard
library (gevent), which the runner, a plain process that manages a server and samples its memory, must not get."""

from __future__ import annotations

DEFAULT_WEIGHTS = {"intent": 4, "search": 3, "bulk": 1, "pairs": 2}
"""The callers' mix unless --weights says otherwise (the locust user classes' weights)."""

SHED = "503 overloaded: shed by the bounded queue"
"""The failure message of a 503: the reports count load the bounded queue refused apart from other failures."""


def phases(spec: str, users: int = 1, seconds: float | None = None) -> list[tuple[int, float]]:
    """`48:20,4:20` → [(48, 20.0), (4, 20.0)]; empty: one phase of `users` for `seconds` (forever if None)."""
    if not spec:
        return [(users, float(seconds) if seconds else float("inf"))]
    plan = []
    for part in spec.split(","):
        count, _, length = part.partition(":")
        try:
            plan.append((int(count), float(length)))
        except ValueError:
            raise ValueError(f"a phase is USERS:SECONDS, not {part!r}") from None
    if any(u < 0 or s <= 0 for u, s in plan):
        raise ValueError(f"phases need users >= 0 and seconds > 0: {spec!r}")
    return plan
