"""The Milvus engine's in-process coordination: a shared/exclusive lock and the write-order clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class WriteClock:
    """Write-order numbers: nanoseconds since the epoch, strictly increasing within this process (across replicas
    the order of writes is kept up to their clocks' skew, and the same stored items always read back alike)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> int:
        """The first of n consecutive numbers."""
        with self._lock:
            first = max(time.time_ns(), self._last + 1)
            self._last = first + n - 1
            return first


WRITE_CLOCK = WriteClock()


class SharedLock:
    """Any number of `shared()` holders or one `exclusive()`. A waiting exclusive holds back new shared holders
    (so a drop is not starved by a stream of writes) but not a thread that already holds it shared (so nested
    holds never deadlock). Calls on collections hold it shared and a drop exclusive: a drop waits for the calls in
    flight in this process, and later calls find the collection gone (404) instead of Milvus failing them half-way
    (503)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0
        self._mine = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        held = getattr(self._mine, "held", 0)
        with self._changed:
            while not held and (self._exclusive or self._waiting):
                self._changed.wait()
            self._shared += 1
        self._mine.held = held + 1
        try:
            yield
        finally:
            self._mine.held = held
            with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._changed:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._changed.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()
