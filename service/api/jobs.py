"""Runners for work that outlives a quick answer, kept off the default thread pool that readiness, health and
embedding share.

`HeavyJobs`: bounded slots for requests whose work grows with the data (k-means, drift baselines); the request
waits for its answer, a full house answers 503 at once, a caller that goes away cancels its job.
`ReembedJobs`: background runs that outlive their request (one per collection), whose progress a GET reports.
Both take their work as a plain callable (`fn(*args, cancelled=…)`, `collection.reembed`) and know nothing of its
domain, so other rooms' long jobs can run on them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import numpy as np
from starlette.requests import Request

from service.api.errors import ApiError
from service.index.base import VectorCollection
from service.index.classify import set_min_score
from service.index.errors import CollectionError, raise_if_out_of_files

log = logging.getLogger(__name__)
T = TypeVar("T")


@contextmanager
def out_of_files_is_503() -> Iterator[None]:
    """A process out of file descriptors answers 503 (try again) rather than 500; other failures pass."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise_if_out_of_files(exc)
        raise


class HeavyJobs:
    """Requests whose work grows with the data run here, on `slots` threads of their own: never in the default
    pool, so readiness, health and embedding never wait behind them. When every slot is busy the next request gets
    503 + Retry-After at once (no queue to grow). A job's `cancelled()` turns true once its caller has gone or the
    server stops, and the job stops at its next check."""

    def __init__(self, slots: int, setting: str = "O2V_MAX_HEAVY_JOBS", what: str = "heavy request(s)") -> None:
        self.slots = slots
        self.busy = f"{slots} {what} already running ({setting}); try again later"
        self.running = 0
        """Slots taken; touched on the event loop only. A slot is freed when its thread finishes, not before."""
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="o2v-heavy")
        self._stops: set[threading.Event] = set()

    async def run(self, request: Request, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args, cancelled=…) in a slot; 503 when none is free."""
        if self.running >= self.slots:
            raise ApiError(503, self.busy)
        if await request.is_disconnected():
            raise ApiError(400, "the client went away before the work started")
        stop = threading.Event()
        self.running += 1
        self._stops.add(stop)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, partial(fn, *args, cancelled=stop.is_set))
        future.add_done_callback(lambda _: self._free(stop))
        try:
            with out_of_files_is_503():
                while True:
                    done, _ = await asyncio.wait({future}, timeout=0.25)
                    if done:
                        return future.result()
                    if await request.is_disconnected():
                        stop.set()
        except asyncio.CancelledError:
            stop.set()
            raise

    def _free(self, stop: threading.Event) -> None:
        self.running -= 1
        self._stops.discard(stop)

    def close(self) -> None:
        """Stop the running jobs at their next check; don't wait for them."""
        for stop in self._stops:
            stop.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


class ReembedJobs:
    """Re-embedding runs, one at most per collection, each on a thread of its own (it outlives its request); their
    progress is part of the collection's info. Kept in this process only: after a restart the collection is either
    switched or untouched, and a new request starts over."""

    def __init__(self, on_switch: Callable[[str], None] = lambda _: None) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.on_switch = on_switch  # told a collection's name once it answers from its new vectors

    def start(
        self,
        collection: VectorCollection,
        embed: Callable[[list[str]], np.ndarray],
        model: str,
        min_score: float | None = None,
    ) -> dict[str, Any]:
        """Start re-embedding `collection` with `embed` (the model of fingerprint `model`); with `min_score`, the
        collection adopts it as classify's default once its new vectors are in place."""
        with self._lock:
            if self.jobs.get(collection.name, {}).get("state") == "running":
                raise ApiError(409, f"collection {collection.name!r} is being re-embedded already", "name")
            job = self.jobs[collection.name] = {"state": "running", "model": model, "done": 0, "total": None}
            if min_score is not None:
                job["min_score"] = min_score
        thread = threading.Thread(target=self._run, args=(collection, embed, model, job), daemon=True)
        thread.start()
        return dict(job)

    def _run(
        self,
        collection: VectorCollection,
        embed: Callable[[list[str]], np.ndarray],
        model: str,
        job: dict[str, Any],
    ) -> None:
        def progress(done: int, total: int) -> None:
            job.update(done=done, total=total)

        try:
            collection.reembed(embed, model, progress=progress, cancelled=self._stop.is_set)
            if job.get("min_score") is not None:  # a threshold of the new vectors: set once they answer
                set_min_score(collection, job["min_score"])
            self.on_switch(collection.name)
            job["state"] = "done"
        except Exception as exc:  # the job's answer is its state; the server goes on
            if not isinstance(exc, CollectionError):
                log.exception("re-embedding collection %r failed", collection.name)
            job.update(state="failed", error=getattr(exc, "message", str(exc)))

    def forget(self, name: str) -> None:
        """A dropped collection's finished job; a running one ends on its own (NotFound) and stays until then."""
        with self._lock:
            if self.jobs.get(name, {}).get("state") != "running":
                self.jobs.pop(name, None)

    def status(self, name: str) -> dict[str, Any] | None:
        job = self.jobs.get(name)
        return dict(job) if job is not None else None

    def close(self) -> None:
        """Stop running jobs at their next batch; an unfinished one leaves its collection untouched."""
        self._stop.set()
