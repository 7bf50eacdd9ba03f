"""The drift streams that exist: each one's window, status, baseline and check bookkeeping, by name."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.drift.baseline import Baseline
from service.drift.config import DriftConfig
from service.drift.errors import FixedStream, InvalidStream
from service.drift.judge import Evaluation
from service.drift.shift import Settled
from service.drift.status import StatusTracker
from service.drift.stream import ScoreStream
from service.drift.streams import STREAM_PATTERN, STREAMS, TOKEN_STREAMS, is_stream_name
from service.errors import NotFound


@dataclass
class TrackedStream:
    """One stream and what its checks keep: scores numbered below `settled_upto` are absorbed into the shift
    test's reference (`settled`) or passed over; `due` is set once `check_every` scores arrived since
    `checked_total`."""

    stream: ScoreStream
    tracker: StatusTracker
    baseline: Baseline | None = None  # uploaded or learned; None means the model card's (or still learning)
    checked_total: int = 0
    checked_at: float = -math.inf  # time.monotonic() of the last check
    due: bool = False
    changed_at: float | None = None
    evaluation: Evaluation | None = field(default=None, repr=False)
    settled: Settled = field(default_factory=Settled)
    settled_upto: int = 0
    shuffled: bool = False  # a full window showed no order (`ordering.live_correlation`)

    def record(self, scores: Sequence[float], now: float, check_every: int) -> bool:
        """Append one request's scores; True when this made the stream due for a check."""
        total = self.stream.record(scores, now)
        if not self.due and total - self.checked_total >= check_every:
            self.due = True
            return True
        return False

    def restart_reference(self) -> None:
        """The shift test's reference is the baseline alone again, from the scores recorded from now on."""
        self.settled, self.settled_upto = Settled(), self.stream.total


class StreamRegistry:
    """The built-in STREAMS, the token streams and the configured ones always exist (`fixed`); others are made on
    first use, at most `max_streams` in all besides the token streams. Adding and removing take `lock`, never the
    check lock, so a request never waits for a check."""

    def __init__(self, config: DriftConfig, token_streams: bool) -> None:
        self.config = config
        self.lock = threading.Lock()
        self._streams: dict[str, TrackedStream] = {}
        self.fixed = tuple(dict.fromkeys((*STREAMS, *(TOKEN_STREAMS if token_streams else ()), *config.streams)))
        for name in self.fixed:
            if self.track(name) is None:
                raise ValueError(
                    f"configured drift stream {name!r}: names must match {STREAM_PATTERN}, "
                    f"at most {config.max_streams} streams (O2V_DRIFT_STREAMS, O2V_DRIFT_MAX_STREAMS)"
                )

    def __contains__(self, name: str) -> bool:
        return name in self._streams

    def get(self, name: str) -> TrackedStream | None:
        return self._streams.get(name)

    def items(self) -> list[tuple[str, TrackedStream]]:
        """A copy: streams may be added meanwhile."""
        return list(self._streams.items())

    def names(self) -> list[str]:
        """The built-in streams first, then the others by name."""
        return sorted(self._streams, key=lambda name: (STREAMS.index(name) if name in STREAMS else len(STREAMS), name))

    def track(self, name: str) -> TrackedStream | None:
        """The stream, made if it is new; None for a bad name or past max_streams."""
        tracked = self._streams.get(name)
        if tracked is not None:
            return tracked
        with self.lock:
            if name in self._streams:
                return self._streams[name]
            counted = sum(1 for n in self._streams if n not in TOKEN_STREAMS)  # the token streams are the model's
            if not is_stream_name(name) or (name not in TOKEN_STREAMS and counted >= self.config.max_streams):
                return None
            c = self.config
            tracked = TrackedStream(
                ScoreStream(name, c.window, c.bucket_seconds, c.history_buckets),
                StatusTracker(c.confirm_checks, c.clear_checks),
            )
            self._streams[name] = tracked
            return tracked

    def create(self, name: str) -> bool:
        """Make the stream exist (True if it is new); InvalidStream for a bad name or past max_streams."""
        if name in self._streams:
            return False
        if self.track(name) is None:
            if not is_stream_name(name):
                raise InvalidStream(f"stream name must match {STREAM_PATTERN}")
            raise InvalidStream(
                f"at most {self.config.max_streams} drift streams (O2V_DRIFT_MAX_STREAMS): delete one first"
            )
        return True

    def remove(self, name: str) -> None:
        """NotFound if there is none, FixedStream for a built-in or configured stream (they always exist)."""
        if name in self.fixed:
            raise FixedStream(f"{name!r} is a built-in or configured stream; replace its baseline instead")
        with self.lock:
            if self._streams.pop(name, None) is None:
                raise NotFound.stream(name)

    def discard(self, name: str, tracked: TrackedStream) -> None:
        """Remove the stream if it is still `tracked` and not a fixed one."""
        with self.lock:
            if name not in self.fixed and self._streams.get(name) is tracked:
                del self._streams[name]
