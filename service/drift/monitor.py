"""The drift monitor: named score streams, their baselines, status checks on a sample clock, report and state."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.drift.advice import advice
from service.drift.baseline import Baseline, card_baseline, iso
from service.drift.config import LEVELS, DriftConfig
from service.drift.notify import StatusNotifier
from service.drift.stats import Statistics, compare, shared_histogram, summary
from service.drift.status import PENDING, StatusTracker, level
from service.drift.store import DriftStore
from service.drift.stream import SCORE_EDGES, ScoreStream

log = logging.getLogger("service.drift")

STREAMS = ("similarity", "search_top1", "classify_confidence")
STREAM_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
STREAM_NAME = re.compile(STREAM_PATTERN)
LEARNED = "live:"  # source prefix of a baseline adopted from a stream's own first window


@dataclass(frozen=True)
class Evaluation:
    """The statistics of one stream's window at one moment; `stats` is None while there is no verdict."""

    total: int
    live: np.ndarray
    stats: Statistics | None
    enter: int | None
    hold: int | None
    at: float


@dataclass
class _Tracked:
    stream: ScoreStream
    tracker: StatusTracker
    baseline: Baseline | None = None  # uploaded or learned; None means the model card's (or still learning)
    checked_total: int = 0
    due: bool = False
    changed_at: float | None = None
    evaluation: Evaluation | None = field(default=None, repr=False)


class DriftMonitor:
    """Records scores in O(1); checks a stream once `check_every` new scores arrived (`run_due_checks`).

    A stream's baseline is, in order: one set through `set_baseline`, the model card's validation scores (except
    for `live_baseline_streams`, whose scores are not pair cosines), or its own first full window.
    The built-in STREAMS and the configured `config.streams` always exist; others are made by `create_stream`
    (or a first `record`), at most `max_streams` in all, and removed by `delete_stream`.
    """

    def __init__(
        self,
        config: DriftConfig,
        card: dict[str, Any] | None = None,
        store: DriftStore | None = None,
        notifier: StatusNotifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.card = card or {}
        self.card_baseline = card_baseline(self.card, config.psi_bins)
        self.store = store
        self.notifier = notifier or StatusNotifier(None)
        self.clock = clock
        self.wake = threading.Event()  # set when some stream is due for a check
        self.dirty = False
        self.dropped = 0
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._streams: dict[str, _Tracked] = {}
        self.fixed = tuple(dict.fromkeys((*STREAMS, *config.streams)))
        for name in self.fixed:
            if self._track(name) is None:
                raise ValueError(
                    f"configured drift stream {name!r}: names must match {STREAM_PATTERN}, "
                    f"at most {config.max_streams} streams (O2V_DRIFT_STREAMS, O2V_DRIFT_MAX_STREAMS)"
                )
        if store is not None:
            self._restore(store.load())

    @classmethod
    def from_settings(cls, settings: Any, card: dict[str, Any]) -> DriftMonitor:
        """The service's monitor: O2V_DRIFT_* settings, state under data_dir/.o2v/drift, the served model's card."""
        config = DriftConfig.from_settings(settings)
        notifier = StatusNotifier(config.webhook_url, config.webhook_timeout_s, config.webhook_retries)
        return cls(config, card, DriftStore.in_data_dir(settings.data_dir), notifier)

    # streams
    def has_stream(self, name: str) -> bool:
        return name in self._streams

    def create_stream(self, name: str) -> bool:
        """Make the stream exist (True if it is new); ValueError for a bad name or past max_streams."""
        if name in self._streams:
            return False
        if self._track(name) is None:
            if not STREAM_NAME.match(name):
                raise ValueError(f"stream name must match {STREAM_PATTERN}")
            raise ValueError(
                f"at most {self.config.max_streams} drift streams (O2V_DRIFT_MAX_STREAMS): delete one first"
            )
        self.dirty = True
        return True

    def delete_stream(self, name: str) -> None:
        """Forget a stream: window, history, status and uploaded baseline; persisted before returning.
        KeyError if there is none, ValueError for a built-in or configured stream (they always exist)."""
        if name in self.fixed:
            raise ValueError(f"{name!r} is a built-in or configured stream; replace its baseline instead")
        with self._lock, self._create_lock:
            del self._streams[name]
        self.dirty = True
        self.save()

    # recording: the request path
    def record(self, name: str, score: float) -> bool:
        """Add one score to a stream (created on first use); never raises, returns False if it was dropped."""
        return self.record_many(name, (score,)) == 1

    def record_many(self, name: str, scores: Iterable[float]) -> int:
        """Add one request's scores; never raises. Non-finite values, bad names and streams past max_streams are
        dropped (counted). Returns how many were kept."""
        values, bad = [], 0
        for s in scores:
            try:
                v = float(s)
            except (TypeError, ValueError):
                v = math.nan
            if math.isfinite(v):
                values.append(v)
            else:
                bad += 1
        tracked = self._streams.get(name) or self._track(name)
        if tracked is None:
            bad, values = bad + len(values), []
        self.dropped += bad
        if not values or tracked is None:
            return 0
        total = tracked.stream.record(values, self.clock())
        self.dirty = True
        if not tracked.due and total - tracked.checked_total >= self.config.check_every:
            tracked.due = True
            self.wake.set()
        return len(values)

    def _track(self, name: str) -> _Tracked | None:
        with self._create_lock:  # not the check lock: a request never waits for a check to finish
            if name in self._streams:
                return self._streams[name]
            if not STREAM_NAME.match(name) or len(self._streams) >= self.config.max_streams:
                return None
            c = self.config
            tracked = _Tracked(
                ScoreStream(name, c.window, c.bucket_seconds, c.history_buckets),
                StatusTracker(c.confirm_checks, c.clear_checks),
            )
            self._streams[name] = tracked
            return tracked

    # baselines
    def baseline(self, name: str) -> Baseline | None:
        tracked = self._streams.get(name)
        if tracked is not None and tracked.baseline is not None:
            return tracked.baseline
        return None if name in self.config.live_baseline_streams else self.card_baseline

    def set_baseline(self, name: str, scores: Iterable[float], source: str) -> dict[str, Any]:
        """Replace a stream's baseline, reset its status to no verdict, and persist before returning."""
        if not STREAM_NAME.match(name):
            raise ValueError(f"stream name must match {STREAM_NAME.pattern}")
        new = Baseline.of(scores, source, self.config.psi_bins, self.clock())
        with self._lock:
            self.create_stream(name)
            tracked = self._streams[name]
            tracked.baseline = new
            self._reset(tracked)
        self.dirty = True
        self.save()
        return new.described

    def _reset(self, tracked: _Tracked) -> None:
        old = tracked.tracker.status
        tracked.tracker.reset()
        tracked.evaluation = None
        tracked.changed_at = self.clock()
        if old != PENDING:
            self._emit(tracked, old, PENDING)

    def _learn_baseline(self, name: str, tracked: _Tracked) -> Baseline | None:
        """A stream without any other baseline adopts its first full window (then refills the window)."""
        if len(tracked.stream.scores) < self.config.window:
            return None
        scores = tracked.stream.take_window()
        tracked.baseline = Baseline(scores, f"{LEARNED}first {scores.size} scores", self.clock(), self.config.psi_bins)
        log.info(json.dumps({"event": "drift_baseline_learned", "stream": name, "n": int(scores.size)}))
        self.dirty = True
        return tracked.baseline

    # checks: the worker thread (or a benchmark) calls these
    def run_due_checks(self) -> int:
        """Check every stream that got `check_every` new scores since its last check; returns how many."""
        due = [name for name, t in list(self._streams.items()) if t.due]
        for name in due:
            self.check(name)
        return len(due)

    def check(self, name: str) -> str:
        """Evaluate the stream now and advance its status (one step of the hysteresis); returns the status."""
        with self._lock:
            tracked = self._streams.get(name)
            if tracked is None:  # deleted since it became due
                return PENDING
            tracked.due = False
            tracked.checked_total = tracked.stream.total
            ev = self._evaluate(name, tracked)
            if ev.enter is not None and ev.hold is not None:
                change = tracked.tracker.step(ev.enter, ev.hold)
                if change is not None:
                    tracked.changed_at = ev.at
                    self._emit(tracked, *change)
            return tracked.tracker.status

    def _evaluate(self, name: str, tracked: _Tracked) -> Evaluation:
        """The cached evaluation while no score arrived since; else fresh statistics (no status change)."""
        cached = tracked.evaluation
        if cached is not None and cached.total == tracked.stream.total:
            return cached
        baseline = self.baseline(name) or self._learn_baseline(name, tracked)
        live = tracked.stream.window()
        stats = enter = hold = None
        if baseline is not None and live.size >= self.config.min_samples:
            stats = compare(baseline.scores, live, baseline.edges)
            enter = level(stats, self.config.limits)
            hold = level(stats, self.config.limits, 1.0 - self.config.hysteresis)
        tracked.evaluation = Evaluation(tracked.stream.total, live, stats, enter, hold, self.clock())
        return tracked.evaluation

    def _emit(self, tracked: _Tracked, old: str, new: str) -> None:
        r = self._describe(tracked.stream.name, tracked, detail=False)
        event = {
            "event": "drift_status_change",
            "stream": tracked.stream.name,
            "from": old,
            "to": new,
            "at": iso(self.clock()),
            "n_live": r["n_live"],
            "n_baseline": r["n_baseline"],
            "live_mean": r["live"].get("mean"),
            "baseline_mean": (r["baseline"] or {}).get("mean"),
            "statistics": {name: entry["value"] for name, entry in r["statistics"].items()},
            "advice": r["advice"],
        }
        self.notifier.notify(event, deliver=PENDING not in (old, new))

    # reading
    def streams(self) -> list[str]:
        """The built-in streams first, then the others by name."""
        return sorted(self._streams, key=lambda name: (STREAMS.index(name) if name in STREAMS else len(STREAMS), name))

    def report(self, detail: bool = True) -> dict[str, Any]:
        """The GET /drift document: every stream's status, statistics, thresholds, summaries and advice."""
        with self._lock:
            streams = {name: self._describe(name, self._streams[name], detail) for name in self.streams()}
        return {
            "generated_at": iso(self.clock()),
            "model": self.card.get("name"),
            "config": self.config.public(),
            "dropped_scores": self.dropped,
            "streams": streams,
        }

    def score_buckets(self) -> dict[str, dict[str, Any]]:
        """Per stream, what Prometheus adds up across replicas: `counts` of the scores this process recorded per
        SCORE_EDGES bucket (+Inf last) and the baseline's CDF at those edges (None without one)."""
        out = {}
        streams = dict(self._streams)  # a stream deleted meanwhile is still answered, not a KeyError
        for name in self.streams():
            if name not in streams:
                continue
            counts = streams[name].stream.score_counts()
            baseline = self.baseline(name)
            cdf = None
            if baseline is not None:
                cdf = np.searchsorted(baseline.scores, SCORE_EDGES, side="right") / baseline.scores.size
            out[name] = {"counts": counts, "baseline_cdf": cdf}
        return out

    def stream_report(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._describe(name, self._streams[name], detail=True)

    def _describe(self, name: str, tracked: _Tracked, detail: bool) -> dict[str, Any]:
        ev = self._evaluate(name, tracked)
        baseline = self.baseline(name)
        status = tracked.tracker.status
        live = summary(ev.live)
        statistics: dict[str, Any] = {}
        if ev.stats is not None:
            values = ev.stats.as_dict()
            for key, value in values.items():
                entry: dict[str, Any] = {"value": round(value, 6)}
                limit = self.config.limits.get(key)
                if limit is not None:
                    crossed = (lvl for lvl in ("drift", "warning") if limit.severity(value, LEVELS.index(lvl)) >= 1.0)
                    entry.update(limit.as_dict(), crossed=next(crossed, None))
                statistics[key] = entry
        out: dict[str, Any] = {
            "status": status,
            "raw_status": LEVELS[ev.enter] if ev.enter is not None else PENDING,
            "changed_at": iso(tracked.changed_at),
            "n_live": int(ev.live.size),
            "n_baseline": int(baseline.scores.size) if baseline is not None else 0,
            "n_total": tracked.stream.total,
            "min_samples": self.config.min_samples,
            "statistics": statistics,
            "baseline": baseline.described if baseline is not None else None,
            "live": live,
            "advice": advice(
                name,
                status,
                baseline.described.get("mean") if baseline is not None else None,
                live.get("mean"),  # type: ignore[arg-type]
                self.card,
            ),
        }
        if detail:
            out["histogram"] = shared_histogram(baseline.scores, ev.live) if baseline is not None else None
            out["history"] = [{**b, "start": iso(b["start"])} for b in tracked.stream.buckets()]
        return out

    # persistence
    def _card_id(self) -> str | None:
        b = self.card_baseline
        return None if b is None else f"{b.source}@{b.created}"

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "card": self._card_id(),
                "streams": {
                    name: {
                        "window": t.stream.state(),
                        "tracker": t.tracker.state(),
                        "baseline": t.baseline.state() if t.baseline is not None else None,
                        "checked_total": t.checked_total,
                        "changed_at": t.changed_at,
                    }
                    for name, t in self._streams.items()
                },
            }

    def save(self) -> bool:
        """Write the state if anything changed since the last write; returns whether it wrote."""
        if self.store is None or not self.dirty:
            return False
        with self._save_lock:
            self.dirty = False
            try:
                self.store.save(self.state())
            except OSError:
                self.dirty = True
                raise
        return True

    def _restore(self, state: dict[str, Any]) -> None:
        """Load the saved streams. After a model change only uploaded baselines come back: windows, statuses and
        baselines learned from live traffic hold the old model's scores, and comparing those with the new model's
        misleads."""
        model_changed = bool(state) and state.get("card") != self._card_id()
        for name, saved in (state.get("streams") or {}).items():
            tracked = self._track(name)
            if tracked is None:
                continue
            baseline = saved.get("baseline")
            if baseline and not (model_changed and baseline["source"].startswith(LEARNED)):
                tracked.baseline = Baseline.restore(baseline, self.config.psi_bins)
            if model_changed:
                log.info(json.dumps({"event": "drift_stream_reset", "stream": name, "reason": "model changed"}))
                continue
            tracked.stream.restore(saved.get("window") or {})
            tracker = saved.get("tracker") or {}
            c = self.config
            tracked.tracker = StatusTracker(
                c.confirm_checks, c.clear_checks, tracker.get("status", PENDING), tracker.get("recent")
            )
            tracked.checked_total = int(saved.get("checked_total", 0))
            tracked.changed_at = saved.get("changed_at")

    def close(self) -> None:
        self.save()
        self.notifier.close()
