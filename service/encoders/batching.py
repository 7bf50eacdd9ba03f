"""MicroBatcher: gathers rows from concurrent requests into one encoder call, behind a bounded queue.

One worker task per batcher takes what is waiting (up to `max_batch` rows, waiting at most `max_wait_ms` for more
while the batch is not full) and runs the blocking encoder function on its own thread, so requests that arrive
while the encoder is busy form the next batch. A request larger than `max_batch` is fed one full batch at a time,
which keeps any one caller from filling the queue. When the rows waiting would pass `max_queue`, `run` raises
Overloaded at once: a 503 now is better than memory and latency that grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.encoders.base import Overloaded

BatchFn = Callable[[list[Any]], np.ndarray]
OnBatch = Callable[[int, float], None]
OnTimes = Callable[["Job"], None]


@dataclass
class Job:
    """One caller's rows, waiting for an encoder call or answered by one (with the times tracing records)."""

    rows: Sequence[Any]
    future: asyncio.Future[np.ndarray]
    queued_ns: int = 0  # epoch nanoseconds (what tracing takes): submitted, handed to the encoder, answered
    started_ns: int = 0
    finished_ns: int = 0
    batch_rows: int = 0


SHUTTING_DOWN = "the server is shutting down"
ENCODE_BATCH = 64
"""Rows in one encoder call: the ONNX encoder cuts a batch into runs of MAX_BATCH_TOKENS padded tokens anyway, so a
larger batch adds no throughput, only the wait of the rows at its end; for SageMaker, 64 texts stay far below
InvokeEndpoint's 6 MiB (the body is split under INVOKE_ENDPOINT_MAX_BYTES besides)."""


def _fail(jobs: Iterable[Job], exc: BaseException) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(exc)


class MicroBatcher:
    """`await run(rows)` → fn(rows) as a [len(rows), ...] array, computed together with other callers' rows."""

    def __init__(
        self,
        fn: BatchFn,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: OnBatch | None = None,
        name: str = "batch",
    ) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.depth = 0  # rows waiting, not yet handed to the encoder
        self._jobs: deque[Job] = deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"o2v-{name}")
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker on the running event loop (the app's lifespan calls this)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        """Stop the worker; callers still waiting get Overloaded rather than hanging."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        _fail(self._jobs, Overloaded(SHUTTING_DOWN))
        self._jobs.clear()
        self.depth = 0
        await asyncio.to_thread(self._executor.shutdown)  # lets a running encoder call finish

    async def run(self, rows: Sequence[Any], on_times: OnTimes | None = None) -> np.ndarray:
        """`on_times(job)` is told each part's queue and encoder times once it is answered (tracing)."""
        if self._worker is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        parts = [
            await self._submit(rows[i : i + self.max_batch], on_times) for i in range(0, len(rows), self.max_batch)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def admit(self, rows: int) -> None:
        """Raise Overloaded when the queue cannot take the first batch of `rows` rows now. `run` checks each batch;
        a caller that must prepare its rows first (tokenize them) checks before, so that a full queue refuses at
        once rather than after the work, which under overload is what keeps the 503s fast."""
        if self.depth + min(rows, self.max_batch) > self.max_queue:
            raise Overloaded(
                f"{self.depth} texts are waiting for the encoder; the queue holds {self.max_queue} "
                "(O2V_MAX_QUEUED_TEXTS): retry later"
            )

    async def _submit(self, rows: Sequence[Any], on_times: OnTimes | None = None) -> np.ndarray:
        self.admit(len(rows))
        job = Job(rows, asyncio.get_running_loop().create_future(), queued_ns=time.time_ns())
        self._jobs.append(job)
        self.depth += len(rows)
        self._wakeup.set()
        out = await job.future
        if on_times is not None:
            on_times(job)
        return out

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = loop.time() + self.max_wait
            while self.depth < self.max_batch and (left := deadline - loop.time()) > 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), left)
            jobs = self._take()
            if not jobs:
                continue
            rows = [row for job in jobs for row in job.rows]
            started, started_ns = time.perf_counter(), time.time_ns()
            try:
                out = await loop.run_in_executor(self._executor, self.fn, rows)
            except asyncio.CancelledError:
                _fail(jobs, Overloaded(SHUTTING_DOWN))
                raise
            except Exception as exc:
                _fail(jobs, exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(rows), time.perf_counter() - started)
            start, finished_ns = 0, time.time_ns()
            for job in jobs:
                job.started_ns, job.finished_ns, job.batch_rows = started_ns, finished_ns, len(rows)
                if not job.future.done():
                    job.future.set_result(out[start : start + len(job.rows)])
                start += len(job.rows)

    def _take(self) -> list[Job]:
        """Waiting jobs in arrival order up to max_batch rows; jobs whose caller went away are dropped."""
        jobs: list[Job] = []
        size = 0
        while self._jobs and (not jobs or size + len(self._jobs[0].rows) <= self.max_batch):
            job = self._jobs.popleft()
            self.depth -= len(job.rows)
            if job.future.done():
                continue
            jobs.append(job)
            size += len(job.rows)
        return jobs
