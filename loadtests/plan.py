"""What the load-test runner (loadtests/runner.py) and its locustfile share, kept free of locust: importing locust
monkey-patches the standard library (gevent), which the runner, a plain process that manages a server and samples
its memory, must not get."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from loadtests.pools import Pools

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


class Http(Protocol):
    """What load_collections needs of an HTTP client with a base URL (httpx.Client)."""

    def get(self, url: str) -> Any: ...
    def put(self, url: str, *, json: Any) -> Any: ...
    def post(self, url: str, *, json: Any) -> Any: ...


def load_collections(http: Http, pools: Pools, names: dict[str, str], batch: int = 256) -> dict[str, int]:
    """Make sure the intents and reviews collections hold the pools' items: create one that is missing (exact
    search), upsert the items of one that holds fewer. Idempotent (PUT and upsert by id are), so the runner, locust's
    master and each of its workers may all call it, at once too; a collection already full costs one GET."""
    counts = {}
    for kind, items in (("intents", pools.intent_items), ("reviews", pools.review_items)):
        path = f"/collections/{names[kind]}"
        info = http.get(path)
        if info.status_code == 404:
            http.put(path, json={"index": "flat"}).raise_for_status()
        else:
            info.raise_for_status()
        if info.status_code == 404 or info.json()["count"] < len(items):
            for i in range(0, len(items), batch):
                http.post(f"{path}/items", json={"items": items[i : i + batch]}).raise_for_status()
        counts[names[kind]] = len(items)
    return counts
