"""The checking thread's work. A stream's check: its baseline (learned on the spot where it has to be), the verdict
on its window, the shift test's reference growing with the live scores judged normal, and one step of the status,
under the check lock. A round: every input's due checks, paced."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable

from service.drift.baseline import LEARNED, Baseline, BaselineChoice
from service.drift.classify import ClassifyMonitor
from service.drift.config import DriftConfig
from service.drift.embeddings import EmbeddingMonitor
from service.drift.errors import InvalidStream
from service.drift.judge import Evaluation, Judge
from service.drift.persistence import StateWriter
from service.drift.recording import Recorder
from service.drift.registry import StreamRegistry, TrackedStream
from service.drift.shift import ShiftTest
from service.drift.status import PENDING
from service.drift.streams import STREAM_PATTERN, TOKEN_STREAMS, is_stream_name

log = logging.getLogger("service.drift")

StatusChanged = Callable[[str, TrackedStream, str, str], None]
"""Called with (stream, its entry, old status, new status) after a status changed."""


class StreamChecks:
    """Checks hold `lock` (the check lock), and so does every read of a verdict; recording never takes it."""

    def __init__(
        self,
        config: DriftConfig,
        registry: StreamRegistry,
        judge: Judge,
        baselines: BaselineChoice,
        writer: StateWriter,
        clock: Callable[[], float],
        changed: StatusChanged,
    ) -> None:
        self.config, self.registry, self.judge, self.baselines = config, registry, judge, baselines
        self.writer, self.clock, self.changed = writer, clock, changed
        self.lock = threading.RLock()

    def baseline(self, name: str, tracked: TrackedStream | None) -> Baseline | None:
        return self.baselines.of(name, tracked.baseline if tracked is not None else None)

    def shift_test(self, name: str, baseline: Baseline) -> ShiftTest | None:
        return self.judge.shift_test(baseline, vocabulary=name in TOKEN_STREAMS)

    def run_due(self, paced: bool) -> int:
        """Check every due stream (`paced`: whose last check is at least `check_interval_s` old); how many."""
        now, wait = time.monotonic(), self.config.check_interval_s if paced else 0.0
        due = [name for name, t in self.registry.items() if t.due and now - t.checked_at >= wait]
        for name in due:
            self.check(name)
        return len(due)

    def next_due_in(self) -> list[float]:
        """For each due stream, seconds until its check interval has passed."""
        now, interval = time.monotonic(), self.config.check_interval_s
        return [max(t.checked_at + interval - now, 0.0) for _, t in self.registry.items() if t.due]

    def check(self, name: str) -> str:
        """Evaluate a due stream and advance its status (one step of the hysteresis); returns the status.

        Only a due stream steps: the worker and a caller of `run_due_checks` may both find it due, and a second
        step on the same scores would count as the second of `confirm` agreeing checks."""
        with self.lock:
            tracked = self.registry.get(name)
            if tracked is None:  # deleted since it became due
                return PENDING
            return self._step(name, tracked)

    def _step(self, name: str, tracked: TrackedStream) -> str:
        if not tracked.due:
            return tracked.tracker.status
        tracked.due = False
        tracked.checked_total, tracked.checked_at = tracked.stream.total, time.monotonic()
        self.settle(name, tracked)
        ev = self.evaluate(name, tracked)
        if ev.verdict is not None:
            if ev.verdict.found_shift:
                # no score recorded so far joins the reference, so the scores around a change it found never do.
                # Not at the warning limit: passing over the normal windows that reach it (5 % of normal runs)
                # would keep the reference's error while counting it as shrunk, and the thresholds would not hold
                tracked.settled_upto = tracked.stream.total
            change = tracked.tracker.step(ev.verdict.enter, ev.verdict.hold)
            if change is not None:
                tracked.changed_at = ev.at
                self.changed(name, tracked, *change)
        return tracked.tracker.status

    def settle(self, name: str, tracked: TrackedStream) -> None:
        """Absorb into the shift test's reference the scores that left its recent window with no check since they
        arrived finding a shift and the stream not in `drift`. Warnings do not count: at 5 % a check KS-family
        warnings come with normal traffic, and passing over them would waste most of it."""
        p, baseline = self.config.shift, self.baseline(name, tracked)
        test = None if baseline is None else self.shift_test(name, baseline)
        if p is None or not p.reference_max or test is None:
            return
        status, total = tracked.tracker.status, tracked.stream.total
        if status == "drift":
            tracked.settled_upto = total
            return
        end = total - p.window
        if status == PENDING or end <= tracked.settled_upto:
            return
        room = max(p.reference_max - tracked.settled.n, 0)
        scores = tracked.stream.between(tracked.settled_upto, end)[:room]
        tracked.settled_upto = end
        if scores.size:
            tracked.settled = tracked.settled.add(test.psi_of(scores))
            tracked.evaluation = None  # the reference changed

    def evaluate(self, name: str, tracked: TrackedStream) -> Evaluation:
        """The cached evaluation while no score arrived since; else fresh statistics (no status change)."""
        cached = tracked.evaluation
        if cached is not None and cached.total == tracked.stream.total:
            return cached
        baseline = self.baseline(name, tracked) or self.learn(name, tracked)
        live = tracked.stream.window()
        verdict = domain = None
        if live.size >= self.config.min_samples:
            shuffled = tracked.shuffled
            if baseline is not None:
                verdict = self.judge.verdict(baseline, live, name in TOKEN_STREAMS, tracked.settled, shuffled)
                tracked.shuffled = verdict.shuffled
            card = self.baselines.card
            if card is not None and baseline is not card and self.baselines.pair_stream(name):
                domain = self.judge.verdict(card, live, shuffled=shuffled)
        tracked.evaluation = Evaluation(tracked.stream.total, live, verdict, domain, self.clock())
        return tracked.evaluation

    def learn(self, name: str, tracked: TrackedStream) -> Baseline | None:
        """A stream without any other baseline adopts its first `learn_size` scores after `learn_warmup` (the
        warm-up is dropped: first traffic is often smoke tests); the scores after them stay as live ones."""
        c = self.config
        if len(tracked.stream.scores) < c.learn_warmup + c.learn_size:
            return None
        scores = tracked.stream.take_first(c.learn_warmup + c.learn_size)[c.learn_warmup :]
        source = f"{LEARNED}first {scores.size} scores after {c.learn_warmup}"
        tracked.baseline = Baseline(scores, source, self.clock(), c.psi_bins)
        tracked.restart_reference()
        log.info(json.dumps({"event": "drift_baseline_learned", "stream": name, "n": int(scores.size)}))
        self.writer.dirty = True
        return tracked.baseline

    def reset(self, name: str, tracked: TrackedStream) -> None:
        """Back to no verdict (a new baseline): the reference restarts and the status is `pending`."""
        old = tracked.tracker.status
        tracked.restart_reference()
        tracked.tracker.reset()
        tracked.evaluation = None
        tracked.changed_at = self.clock()
        if old != PENDING:
            self.changed(name, tracked, old, PENDING)

    def replace_baseline(
        self, name: str, scores: Iterable[float], source: str, persist: Callable[[], None], made_for: bool
    ) -> Baseline:
        """Make `scores` the stream's baseline (the stream made if needed) with no verdict yet, then `persist()`.
        When that fails, the old baseline is back, and a stream made for this baseline (here, or by the caller:
        `made_for`) is gone: what was not stored is not kept, so a restart cannot take back what was served."""
        if not is_stream_name(name):
            raise InvalidStream(f"stream name must match {STREAM_PATTERN}")
        new = Baseline.of(scores, source, self.config.psi_bins, self.clock())
        self.shift_test(name, new)  # simulated in the caller's thread (PUT runs it off the event loop)
        with self.lock:
            created = self.registry.create(name)
            tracked = self.registry.get(name)
            assert tracked is not None  # just made or fixed, and deleting one takes this lock
            before, tracked.baseline = tracked.baseline, new
            self.reset(name, tracked)
        try:
            persist()
        except OSError:
            with self.lock:
                if tracked.baseline is new:
                    tracked.baseline = before
                    if (created or made_for) and before is None:
                        self.registry.discard(name, tracked)
            raise
        return new

    def prepare(self) -> None:
        """Simulate the shift test's limits of the baselines known now, so no request waits for it later."""
        for name, tracked in self.registry.items():
            baseline = self.baseline(name, tracked)
            if baseline is not None:
                self.shift_test(name, baseline)


class CheckRound:
    """One round of the checking thread over every input: the token queue's drain into the token streams, the due
    embedding families, classify scopes and score streams. Paced (the worker), whatever was checked less than its
    interval ago waits for its turn (`next_in`), so at saturation the checks cost a bounded share of time, not one
    check per `check_every` requests' scores."""

    def __init__(
        self, checks: StreamChecks, recorder: Recorder, classify: ClassifyMonitor, embeddings: EmbeddingMonitor | None
    ) -> None:
        self.checks, self.recorder, self.classify, self.embeddings = checks, recorder, classify, embeddings

    def run(self, paced: bool) -> int:
        """Returns how many score streams were checked."""
        now, tokens = time.monotonic(), self.recorder.tokens
        if tokens is not None and (not paced or tokens.turn(now) == 0.0):
            tokens.drain(now, self.recorder.record_many, self.recorder.texts)
        if self.embeddings is not None:
            self.embeddings.run_due_checks(paced)
        self.classify.run_due_checks(self.checks.config.check_every)
        return self.checks.run_due(paced)

    def next_in(self) -> float | None:
        """Seconds until a due stream, the token queue or an embedding family may be checked (None: none waits)."""
        waits, tokens = self.checks.next_due_in(), self.recorder.tokens
        if tokens is not None and tokens.requests:
            waits.append(tokens.turn(time.monotonic()))
        if self.embeddings is not None and (family := self.embeddings.next_check_in()) is not None:
            waits.append(family)
        return min(waits, default=None)
