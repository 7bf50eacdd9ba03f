"""MicroBatcher around the real ONNX encoder: gathering, order, splitting, the bounded queue, errors, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from service.encoders.base import BackendUnavailable, Overloaded
from service.encoders.batching import MicroBatcher
from tests.gateway_fixtures import onnx_encoder

ROWS = [[2023 + i, 2003, 1037 + 2 * i] for i in range(40)]


class Recording:
    """The encoder's embed_ids, counting the rows of each call; `gate` (when given) holds every call until set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.gate = gate

    def __call__(self, rows: list[list[int]]) -> np.ndarray:
        self.calls.append(len(rows))
        if self.gate is not None:
            self.gate.wait(10)
        return onnx_encoder().embed_ids(rows)


async def _with_batcher(fn, coro, **kw):
    batcher = MicroBatcher(fn, kw.pop("max_batch", 64), kw.pop("max_wait_ms", 50.0), kw.pop("max_queue", 1024), **kw)
    batcher.start()
    try:
        return await coro(batcher)
    finally:
        await batcher.close()


def test_concurrent_requests_become_one_encoder_call():
    fn = Recording()

    async def go(batcher):
        return await asyncio.gather(*(batcher.run([row]) for row in ROWS[:8]))

    results = asyncio.run(_with_batcher(fn, go))
    assert fn.calls == [8]
    np.testing.assert_allclose(np.concatenate(results), onnx_encoder().embed_ids(ROWS[:8]), rtol=1e-5, atol=1e-6)


def test_batches_never_pass_max_batch_and_every_row_comes_back_to_its_caller():
    fn = Recording()

    async def go(batcher):
        return await asyncio.gather(*(batcher.run(ROWS[i : i + 3]) for i in range(0, 30, 3)))

    results = asyncio.run(_with_batcher(fn, go, max_batch=8))
    assert max(fn.calls) <= 8 and sum(fn.calls) == 30
    np.testing.assert_allclose(np.concatenate(results), onnx_encoder().embed_ids(ROWS[:30]), rtol=1e-5, atol=1e-6)


def test_a_large_request_is_fed_one_full_batch_at_a_time():
    fn = Recording()
    out = asyncio.run(_with_batcher(fn, lambda b: b.run(ROWS[:20]), max_batch=8, max_queue=8))
    assert fn.calls == [8, 8, 4]
    np.testing.assert_allclose(out, onnx_encoder().embed_ids(ROWS[:20]), rtol=1e-5, atol=1e-6)


def test_no_wait_when_the_batch_is_full():
    fn = Recording()
    started = time.perf_counter()
    asyncio.run(_with_batcher(fn, lambda b: b.run(ROWS[:8]), max_batch=8, max_wait_ms=5000))
    assert time.perf_counter() - started < 2.0


def test_a_full_queue_answers_overloaded_at_once():
    gate = threading.Event()
    fn = Recording(gate)

    async def go(batcher):
        first = asyncio.ensure_future(batcher.run(ROWS[:4]))  # taken by the worker, held in the encoder
        while not fn.calls:
            await asyncio.sleep(0.001)
        waiting = [asyncio.ensure_future(batcher.run(ROWS[i : i + 4])) for i in (4, 8)]  # 8 rows queued: full
        await asyncio.sleep(0.01)
        assert batcher.depth == 8
        started = time.perf_counter()
        with pytest.raises(Overloaded, match="queue holds 8"):
            await batcher.run(ROWS[12:13])
        refused_in = time.perf_counter() - started
        with pytest.raises(Overloaded):
            batcher.admit(1)  # what a caller asks before it tokenizes
        gate.set()
        done = await asyncio.gather(first, *waiting)
        return refused_in, done

    refused_in, done = asyncio.run(_with_batcher(fn, go, max_batch=4, max_wait_ms=0, max_queue=8))
    assert refused_in < 0.1
    assert [len(d) for d in done] == [4, 4, 4]


def test_encoder_errors_reach_every_caller_of_the_batch():
    def failing(rows):
        raise BackendUnavailable("endpoint down")

    async def go(batcher):
        return await asyncio.gather(*(batcher.run([row]) for row in ROWS[:3]), return_exceptions=True)

    results = asyncio.run(_with_batcher(failing, go))
    assert all(isinstance(r, BackendUnavailable) for r in results)


def test_close_fails_callers_still_waiting():
    gate = threading.Event()
    fn = Recording(gate)

    async def go():
        batcher = MicroBatcher(fn, 1, 0.0, 100)
        batcher.start()
        first = asyncio.ensure_future(batcher.run(ROWS[:1]))
        second = asyncio.ensure_future(batcher.run(ROWS[1:2]))
        while not fn.calls:
            await asyncio.sleep(0.001)
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.01)
        gate.set()
        await closing
        return await asyncio.gather(first, second, return_exceptions=True)

    first, second = asyncio.run(go())
    assert isinstance(first, Overloaded) and isinstance(second, Overloaded)


def test_run_before_start_is_a_programming_error():
    with pytest.raises(RuntimeError, match="start"):
        asyncio.run(MicroBatcher(Recording(), 4, 0.0, 4).run(ROWS[:1]))
