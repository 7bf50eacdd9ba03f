"""The drift monitor's state as one JSON document: what is written (`monitor_state`), what comes back after a
restart (`restore_state`), and when it is written (`StateWriter`)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from service.drift.baseline import LEARNED, Baseline
from service.drift.classify import ClassifyMonitor
from service.drift.config import DriftConfig
from service.drift.embeddings import EmbeddingMonitor
from service.drift.labels import LabelMonitor
from service.drift.registry import StreamRegistry, TrackedStream
from service.drift.shift import Settled
from service.drift.status import PENDING, StatusTracker
from service.drift.store import DriftStore

log = logging.getLogger("service.drift")


class StateWriter:
    """Writes the state when something changed since the last write (`dirty`), one write at a time."""

    def __init__(self, store: DriftStore | None) -> None:
        self.store = store
        self.dirty = False
        self._lock = threading.Lock()

    def save(self, state: Callable[[], dict[str, Any]]) -> bool:
        """Write `state()` if anything changed; returns whether it wrote. A failed write (OSError) stays dirty."""
        if self.store is None or not self.dirty:
            return False
        with self._lock:
            self._write(self.store, state)
        return True

    def commit(self, state: Callable[[], dict[str, Any]], then: Callable[[], None]) -> None:
        """Write `state()` now, then run `then()`, which makes in memory the change that state already holds (a
        baseline upload's embedding reference): one step under the write lock, so no other save writes between
        the two, and each later save holds the change too. A failed write (OSError) raises before `then` runs;
        without a store `then` just runs."""
        with self._lock:
            if self.store is not None:
                self._write(self.store, state)
            then()

    def _write(self, store: DriftStore, state: Callable[[], dict[str, Any]]) -> None:
        """Under the write lock. Clean before `state()` is taken: a change recorded meanwhile makes it dirty again."""
        self.dirty = False
        try:
            store.save(state())
        except OSError:
            self.dirty = True
            raise

    def close(self, state: Callable[[], dict[str, Any]]) -> None:
        """The last save; a failed one (a full disk) is logged, not raised, so the rest of a shutdown runs: the
        state file keeps what the last successful save wrote."""
        try:
            self.save(state)
        except OSError as exc:
            path = str(self.store.path) if self.store is not None else None
            log.warning(json.dumps({"event": "drift_state_not_saved", "path": path, "error": str(exc)}))


def monitor_state(
    card_id: str | None,
    labels: LabelMonitor,
    classify: ClassifyMonitor,
    registry: StreamRegistry,
    embeddings: EmbeddingMonitor | None,
    pending: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`pending`: uploaded embedding references per route family, stored before they are used."""
    return {
        "card": card_id,
        "labels": labels.state(),
        "classify": classify.state(),
        "streams": {name: _stream_state(t) for name, t in registry.items()},
        "embeddings": embeddings.state(pending) if embeddings is not None else None,
    }


def _stream_state(t: TrackedStream) -> dict[str, Any]:
    return {
        "window": t.stream.state(),
        "tracker": t.tracker.state(),
        "baseline": t.baseline.state() if t.baseline is not None else None,
        "checked_total": t.checked_total,
        "changed_at": t.changed_at,
        "settled": {**t.settled.state(), "upto": t.settled_upto},
        "shuffled": t.shuffled,
    }


def restore_state(
    state: dict[str, Any],
    card_id: str | None,
    config: DriftConfig,
    registry: StreamRegistry,
    labels: LabelMonitor,
    classify: ClassifyMonitor,
    embeddings: EmbeddingMonitor | None,
) -> None:
    """Load the saved streams. A state saved with another model card brings back only the uploaded baselines:
    windows, statuses and baselines learned from live traffic hold another model's scores, and comparing those
    with this model's misleads; so do the classify streams' confidences and their collections' leave-one-out
    references. A state written before classify streams were saved has none, and loads."""
    model_changed = bool(state) and state.get("card") != card_id
    if not model_changed:
        labels.restore(state.get("labels") or {})
        classify.restore(state.get("classify") or {})
        if embeddings is not None:
            embeddings.restore(state.get("embeddings") or {})
    for name, saved in (state.get("streams") or {}).items():
        tracked = registry.track(name)
        if tracked is None:
            continue
        baseline = saved.get("baseline")
        if baseline and not (model_changed and baseline["source"].startswith(LEARNED)):
            tracked.baseline = Baseline.restore(baseline, config.psi_bins)
        if model_changed:
            log.info(json.dumps({"event": "drift_stream_reset", "stream": name, "reason": "model changed"}))
            continue
        _restore_stream(tracked, saved, config)


def _restore_stream(tracked: TrackedStream, saved: dict[str, Any], config: DriftConfig) -> None:
    tracked.stream.restore(saved.get("window") or {})
    tracker = saved.get("tracker") or {}
    tracked.tracker = StatusTracker(
        config.confirm_checks, config.clear_checks, tracker.get("status", PENDING), tracker.get("recent")
    )
    tracked.checked_total = int(saved.get("checked_total", 0))
    settled = saved.get("settled") or {}
    tracked.settled, tracked.settled_upto = Settled.restore(settled), int(settled.get("upto", 0))
    tracked.changed_at = saved.get("changed_at")
    tracked.shuffled = saved.get("shuffled") is True
