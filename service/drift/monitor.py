"""The drift monitor: named score streams, their baselines, status checks on a sample clock, report and state."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.drift.advice import advice
from service.drift.baseline import LEARNED, MIN_BASELINE, MODEL, Baseline, card_baseline, card_time, iso
from service.drift.classify import ClassifyMonitor, ReferenceSource
from service.drift.config import LEVELS, DriftConfig, Limit
from service.drift.embeddings import INGEST, SIMILARITY_FAMILY, EmbeddingMonitor, current_family, load_sample
from service.drift.errors import FixedStream, InvalidStream
from service.drift.labels import LabelMonitor
from service.drift.notify import StatusNotifier
from service.drift.ordering import inflation, ks_pvalue, live_correlation
from service.drift.shift import Settled, ShiftTest
from service.drift.stats import compare, shared_histogram, summary
from service.drift.status import GATE, PENDING, StatusTracker, level
from service.drift.store import DriftStore
from service.drift.stream import SCORE_EDGES, ScoreStream
from service.drift.streams import LABEL_STREAM, STREAM_PATTERN, STREAMS, TOKEN_STREAMS, is_stream_name
from service.drift.texts import TextKeeper
from service.drift.tokens import RATES_FILE, TokenModel, TokenRates
from service.errors import NotFound, ServiceError
from service.settings import Settings
from service.text import TextTokenizer

log = logging.getLogger("service.drift")

MAX_LABEL_CHARS = 200


@dataclass(frozen=True)
class Verdict:
    """One window against one baseline: every statistic (the KS family, the shift test's z, a rate's mean increase),
    the limits that judged them, and the levels they give (`enter` at the thresholds, `hold` relaxed by the
    hysteresis)."""

    values: dict[str, float]
    limits: dict[str, Limit]
    enter: int
    hold: int
    shuffled: bool = False  # the stream counts as shuffled traffic after this window (`ordering.live_correlation`)


@dataclass(frozen=True)
class Evaluation:
    """One stream's window at one moment: `verdict` is None while there is no verdict; `domain` is the same window
    against the model card's validation scores when the stream's own baseline is another (learned or uploaded)."""

    total: int
    live: np.ndarray
    verdict: Verdict | None
    domain: Verdict | None
    at: float


@dataclass
class CheckCost:
    """What the checking thread spent: rounds, seconds working (checks, token rates, saves) and seconds paused to
    keep within `cpu_budget`; GET /drift shows it, bench.http_overhead reads it."""

    rounds: int = 0
    busy_s: float = 0.0
    cpu_s: float = 0.0
    paused_s: float = 0.0

    def report(self, budget: float) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "busy_s": round(self.busy_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "paused_s": round(self.paused_s, 3),
            "budget": budget,
        }


@dataclass
class _Tracked:
    stream: ScoreStream
    tracker: StatusTracker
    baseline: Baseline | None = None  # uploaded or learned; None means the model card's (or still learning)
    checked_total: int = 0
    checked_at: float = -math.inf  # time.monotonic() of the last check
    due: bool = False
    changed_at: float | None = None
    evaluation: Evaluation | None = field(default=None, repr=False)
    settled: Settled = field(default_factory=Settled)  # live scores the shift test's reference absorbed
    settled_upto: int = 0  # scores numbered below this are absorbed or passed over
    shuffled: bool = False  # a full window showed no order (`ordering.live_correlation`)


class DriftMonitor:
    """Records scores in O(1); checks a stream once `check_every` new scores arrived (`run_due_checks`).

    A stream's baseline is, in order: one set through `set_baseline`, the model card's validation scores (except
    for `live_baseline_streams`, whose scores are not pair cosines, and every stream with `learn`), or its own
    first `learn_size` scores after `learn_warmup`.
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
        tokens: tuple[TokenRates, TokenModel] | None = None,
        embedding_sample: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self.card = card or {}
        self.card_baseline = card_baseline(self.card, config.psi_bins)
        self.token_rates = tokens[0] if tokens is not None else None
        self.token_baselines: dict[str, Baseline] = {}
        for name, values in (tokens[1].validation if tokens is not None else {}).items():
            if len(values) >= MIN_BASELINE:
                source = f"{MODEL}{RATES_FILE}:validation texts"
                self.token_baselines[name] = Baseline.of(values, source, config.psi_bins, card_time(self.card))
        self._token_queue: deque[tuple[Sequence[str] | None, list[list[int]], list[int]]] = deque(
            maxlen=config.token_queue
        )
        self.embeddings = None
        if embedding_sample is not None:
            self.embeddings = EmbeddingMonitor(
                embedding_sample,
                config.embed_window,
                config.embed_min_samples,
                config.embed_check_every,
                config.embed_permutations,
                config.embed_limit,
                config.confirm_checks,
                config.clear_checks,
                config.embed_check_interval_s,
            )
        self.texts = TextKeeper(config.keep_texts, config.keep_texts_max_age_s, clock) if config.keep_texts else None
        self._queued_texts = 0
        self._drained_at = -math.inf  # time.monotonic() of the last paced drain of the token queue
        self.store = store
        self.notifier = notifier or StatusNotifier(None)
        self.clock = clock
        self.wake = threading.Event()  # set when some stream is due for a check
        self.dirty = False
        self.dropped = 0
        self.dropped_token_requests = 0
        self.cost = CheckCost()
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._streams: dict[str, _Tracked] = {}
        self.labels = LabelMonitor(
            config.window,
            config.learn_warmup,
            config.learn_size,
            config.max_labels,
            config.label_min_count,
            config.label_alpha,
        )
        self.classify = ClassifyMonitor(
            config.window,
            config.min_samples,
            config.max_streams,
            config.accuracy_fall,
            config.confirm_checks,
            config.clear_checks,
        )
        token_streams = TOKEN_STREAMS if self.token_rates is not None else ()
        self.fixed = tuple(dict.fromkeys((*STREAMS, *token_streams, *config.streams)))
        for name in self.fixed:
            if self._track(name) is None:
                raise ValueError(
                    f"configured drift stream {name!r}: names must match {STREAM_PATTERN}, "
                    f"at most {config.max_streams} streams (O2V_DRIFT_STREAMS, O2V_DRIFT_MAX_STREAMS)"
                )
        if store is not None:
            state = store.load()
            try:
                self._restore(state)
            except (ServiceError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:  # wrong content
                store.set_aside(f"{type(exc).__name__}: {exc}")
                self.__init__(config, card, None, notifier, clock, tokens, embedding_sample)  # type: ignore[misc]
                self.store = store  # afresh: nothing of the damaged state half-restored

    @classmethod
    def from_settings(
        cls, settings: Settings, card: dict[str, Any], tokenizer: TextTokenizer | None = None
    ) -> DriftMonitor:
        """The service's monitor: O2V_DRIFT_* settings, state under data_dir/.o2v/drift, the served model's card,
        and with the model's `TextTokenizer` the token streams (the model dir's trained rows and rates); embedding
        drift where the model dir has an embedding sample."""
        config = DriftConfig.from_settings(settings)
        notifier = StatusNotifier(config.webhook_url, config.webhook_timeout_s, config.webhook_retries)
        tokens = None
        if tokenizer is not None:
            model = TokenModel.load(settings.model_dir, tokenizer.vocab_size)
            tokens = (TokenRates(model.trained, tokenizer.unk_id, tokenizer.max_seq_len), model)
        sample = load_sample(getattr(settings, "model_dir", None))
        store = DriftStore.in_data_dir(settings.data_dir)
        return cls(config, card, store, notifier, tokens=tokens, embedding_sample=sample)

    # streams
    def has_stream(self, name: str) -> bool:
        return name in self._streams

    def create_stream(self, name: str) -> bool:
        """Make the stream exist (True if it is new); InvalidStream for a bad name or past max_streams."""
        if name in self._streams:
            return False
        if self._track(name) is None:
            if not is_stream_name(name):
                raise InvalidStream(f"stream name must match {STREAM_PATTERN}")
            raise InvalidStream(
                f"at most {self.config.max_streams} drift streams (O2V_DRIFT_MAX_STREAMS): delete one first"
            )
        self.dirty = True
        return True

    def delete_stream(self, name: str) -> None:
        """Forget a stream: window, history, status and uploaded baseline; persisted before returning.
        NotFound if there is none, FixedStream for a built-in or configured stream (they always exist)."""
        if name in self.fixed:
            raise FixedStream(f"{name!r} is a built-in or configured stream; replace its baseline instead")
        with self._lock, self._create_lock:
            if self._streams.pop(name, None) is None:
                raise NotFound.stream(name)
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

    def record_label(self, label: str | None, confidence: float) -> None:
        """One classification's answer (None: out of scope) and confidence, for the per-label ranking; never raises."""
        try:
            self.labels.record(None if label is None else str(label)[:MAX_LABEL_CHARS], float(confidence))
        except (TypeError, ValueError):
            self.dropped += 1
            return
        self.dirty = True

    def record_classification(
        self, collection: str, label_key: str, reference: ReferenceSource, label: Any, confidence: float
    ) -> None:
        """One classify answer of a collection (canonical label, None: out of scope), for that collection's own
        stream; `reference` computes the collection's leave-one-out answers, on the checking thread, once."""
        try:
            self.classify.record(collection, label_key, reference, label, float(confidence))
        except (TypeError, ValueError):
            self.dropped += 1
            return
        if self.classify.due(self.config.check_every):
            self.wake.set()

    def record_tokens(self, rows: list[list[int]], lengths: list[int], texts: Sequence[str] | None = None) -> None:
        """One request's token rows (cut) and lengths (before the cut), queued for the checking thread: O(1) here.
        A full queue drops the oldest request (counted in `dropped_token_requests`). `texts` are kept only with
        O2V_DRIFT_KEEP_TEXTS."""
        if self.token_rates is None or not rows or current_family() == INGEST:
            return
        if len(self._token_queue) == self._token_queue.maxlen:
            self.dropped_token_requests += 1
        self._token_queue.append((texts if self.texts is not None else None, rows, lengths))
        self._queued_texts += len(rows)
        if self._queued_texts >= self.config.check_every and self._token_turn(time.monotonic()) == 0.0:
            self.wake.set()

    def _token_turn(self, now: float) -> float:
        """Seconds until the worker drains the token queue again: once per check interval, so at saturation the
        per-text rates are computed for at most a queue's worth of requests per interval (a sample; the rest are
        counted in `dropped_token_requests`), not for every request."""
        return max(self._drained_at + self.config.check_interval_s - now, 0.0)

    def record_pairs(
        self,
        name: str,
        pairs: Sequence[tuple[str, str]],
        rows: tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]],
        scores: Sequence[float],
    ) -> None:
        """One /similarity request's pairs with their token ids and scores, kept for `export` only with
        O2V_DRIFT_KEEP_TEXTS and only for a stream that exists (the scores went through `record_many` first)."""
        if self.texts is not None and name in self._streams:
            self.texts.keep_pairs(name, pairs, rows, scores)

    def record_embeddings(self, vectors: np.ndarray) -> None:
        """One request's embeddings, for the embedding-drift test of its route family; never raises."""
        if self.embeddings is None or vectors.ndim != 2 or vectors.shape[0] == 0 or current_family() == INGEST:
            return
        if vectors.shape[1] != self.embeddings.reference.shape[1]:  # e.g. a SageMaker endpoint of another model
            self.dropped += vectors.shape[0]
            return
        self.embeddings.record(vectors)
        self.dirty = True
        if self.embeddings.due():
            self.wake.set()

    def _drain_tokens(self) -> None:
        """Turn the queued token rows into the three per-text values and record them, oldest first: at most a
        window's worth of texts (`window`) per drain, the newest requests; older ones are a sample left out
        (counted in `dropped_token_requests`), since a window holds no more and the work would grow with traffic."""
        rates = self.token_rates
        if rates is None:
            return
        self._queued_texts = 0
        taken: list[tuple[Sequence[str] | None, list[list[int]], list[int]]] = []
        room = self.config.window
        while self._token_queue:
            try:
                request = self._token_queue.pop()
            except IndexError:  # taken meanwhile
                break
            if room <= 0:
                self.dropped_token_requests += 1
                continue
            taken.append(request)
            room -= len(request[1])
        for texts, rows, lengths in reversed(taken):
            values = rates.rates(rows, lengths)
            for name, per_text in values.items():
                if per_text:
                    self.record_many(name, per_text)
            if texts is not None and self.texts is not None:
                self.texts.keep(texts, values)

    def _track(self, name: str) -> _Tracked | None:
        with self._create_lock:  # not the check lock: a request never waits for a check to finish
            if name in self._streams:
                return self._streams[name]
            counted = sum(1 for n in self._streams if n not in TOKEN_STREAMS)  # the token streams are the model's
            if not is_stream_name(name) or (name not in TOKEN_STREAMS and counted >= self.config.max_streams):
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
        if name in TOKEN_STREAMS:  # the validation texts' rates, whatever the score baseline mode
            return self.token_baselines.get(name)
        return None if self._learns(name) else self.card_baseline

    def _learns(self, name: str) -> bool:
        return self.config.learn or not self._pair_stream(name)

    def _pair_stream(self, name: str) -> bool:
        """Its scores are pair cosines, so the model card's validation cosines describe them."""
        return name not in self.config.live_baseline_streams and name not in TOKEN_STREAMS

    def set_baseline(
        self,
        name: str,
        scores: Iterable[float],
        source: str,
        texts: np.ndarray | None = None,
        made_for: bool = False,
    ) -> dict[str, Any]:
        """Replace a stream's baseline, reset its status to no verdict, and persist before returning. `texts`: the
        embeddings of an uploaded baseline's pairs, which become the `similarity` route family's embedding reference
        (the card's sample stays its domain reference). When the save fails, the old baseline is back, and a stream
        made for this baseline (here, or by the caller: `made_for`) is gone."""
        if not is_stream_name(name):
            raise InvalidStream(f"stream name must match {STREAM_PATTERN}")
        new = Baseline.of(scores, source, self.config.psi_bins, self.clock())
        # the shift test is simulated here, in the caller's thread (PUT runs it off the event loop), not on a check
        self._shift_test(new, vocabulary=name in TOKEN_STREAMS)
        with self._lock:
            created = self.create_stream(name)
            tracked = self._streams[name]
            before, tracked.baseline = tracked.baseline, new
            self._reset(tracked)
        if texts is not None and self.embeddings is not None:
            self.embeddings.set_reference(SIMILARITY_FAMILY, texts, f"uploaded:{name}")
        self.dirty = True
        try:
            self.save()
        except OSError:  # not stored (a full disk): not kept either, so a restart cannot take back what was served
            with self._lock, self._create_lock:
                if tracked.baseline is new:
                    tracked.baseline = before
                    if (created or made_for) and before is None and name not in self.fixed:
                        self._streams.pop(name, None)
            raise
        return new.described

    def _reset(self, tracked: _Tracked) -> None:
        old = tracked.tracker.status
        tracked.settled, tracked.settled_upto = Settled(), tracked.stream.total
        tracked.tracker.reset()
        tracked.evaluation = None
        tracked.changed_at = self.clock()
        if old != PENDING:
            self._emit(tracked, old, PENDING)

    def _learn_baseline(self, name: str, tracked: _Tracked) -> Baseline | None:
        """A stream without any other baseline adopts its first `learn_size` scores after `learn_warmup` (the
        warm-up is dropped: first traffic is often smoke tests); the scores after them stay as live ones."""
        c = self.config
        if len(tracked.stream.scores) < c.learn_warmup + c.learn_size:
            return None
        scores = tracked.stream.take_first(c.learn_warmup + c.learn_size)[c.learn_warmup :]
        source = f"{LEARNED}first {scores.size} scores after {c.learn_warmup}"
        tracked.baseline = Baseline(scores, source, self.clock(), c.psi_bins)
        tracked.settled, tracked.settled_upto = Settled(), tracked.stream.total
        log.info(json.dumps({"event": "drift_baseline_learned", "stream": name, "n": int(scores.size)}))
        self.dirty = True
        return tracked.baseline

    def prepare(self) -> None:
        """Simulate the shift test's limits of the baselines known at start (the worker calls it first), so no
        request reading GET /drift waits for it."""
        for name in list(self._streams):
            baseline = self.baseline(name)
            if baseline is not None:
                self._shift_test(baseline, vocabulary=name in TOKEN_STREAMS)

    # checks: the worker thread (or a benchmark) calls these
    def run_due_checks(self, paced: bool = False) -> int:
        """Check every stream that got `check_every` new scores since its last check; returns how many.

        `paced` (the worker): a stream checked less than `check_interval_s` ago (an embedding family less than
        `embed_check_interval_s` ago) waits for its next turn (`next_check_in`), so at saturation the checks cost
        a bounded share of time instead of one check per `check_every` requests' scores."""
        now = time.monotonic()
        if not paced or self._token_turn(now) == 0.0:
            self._drained_at = now
            self._drain_tokens()
        if self.embeddings is not None:
            self.embeddings.run_due_checks(paced)
        self.classify.run_due_checks(self.config.check_every)
        wait = self.config.check_interval_s if paced else 0.0
        due = [name for name, t in list(self._streams.items()) if t.due and now - t.checked_at >= wait]
        for name in due:
            self.check(name)
        return len(due)

    def next_check_in(self) -> float | None:
        """Seconds until a due stream or embedding family that waits for its interval may be checked (None: none
        waits)."""
        now, interval = time.monotonic(), self.config.check_interval_s
        waits = [max(t.checked_at + interval - now, 0.0) for t in list(self._streams.values()) if t.due]
        if self._token_queue:
            waits.append(self._token_turn(now))
        if self.embeddings is not None and (family := self.embeddings.next_check_in()) is not None:
            waits.append(family)
        return min(waits, default=None)

    def check(self, name: str) -> str:
        """Evaluate a due stream and advance its status (one step of the hysteresis); returns the status.

        Only a due stream steps: the worker and a caller of `run_due_checks` may both find it due, and a second
        step on the same scores would count as the second of `confirm` agreeing checks."""
        with self._lock:
            tracked = self._streams.get(name)
            if tracked is None:  # deleted since it became due
                return PENDING
            if not tracked.due:
                return tracked.tracker.status
            tracked.due = False
            tracked.checked_total, tracked.checked_at = tracked.stream.total, time.monotonic()
            self._settle(name, tracked)
            ev = self._evaluate(name, tracked)
            if ev.verdict is not None:
                self._pass_over(tracked, ev.verdict)
                change = tracked.tracker.step(ev.verdict.enter, ev.verdict.hold)
                if change is not None:
                    tracked.changed_at = ev.at
                    self._emit(tracked, *change)
            return tracked.tracker.status

    def _settle(self, name: str, tracked: _Tracked) -> None:
        """Absorb into the shift test's reference the scores that left its recent window with no check since they
        arrived finding a shift (`_pass_over`) and the stream not in `drift`. Warnings do not count: at 5 % a check
        KS-family warnings come with normal traffic, and passing over them would waste most of it."""
        p, baseline = self.config.shift, self.baseline(name)
        test = None if baseline is None else self._shift_test(baseline, vocabulary=name in TOKEN_STREAMS)
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

    @staticmethod
    def _pass_over(tracked: _Tracked, verdict: Verdict) -> None:
        """A check whose shift statistic reached its drift limit: no score recorded so far joins the reference, so
        the scores around a change it found never do. Not at the warning limit: passing over the normal windows
        that reach it (5 % of normal runs) would keep the reference's error while counting it as shrunk, and the
        thresholds would no longer hold."""
        z, limit = verdict.values.get("shift_z"), verdict.limits.get("shift_z")
        if z is not None and limit is not None and abs(z) >= limit.drift:
            tracked.settled_upto = tracked.stream.total

    def _evaluate(self, name: str, tracked: _Tracked) -> Evaluation:
        """The cached evaluation while no score arrived since; else fresh statistics (no status change)."""
        cached = tracked.evaluation
        if cached is not None and cached.total == tracked.stream.total:
            return cached
        baseline = self.baseline(name) or self._learn_baseline(name, tracked)
        live = tracked.stream.window()
        verdict = domain = None
        if live.size >= self.config.min_samples:
            shuffled = tracked.shuffled
            if baseline is not None:
                verdict = self.judge(baseline, live, name in TOKEN_STREAMS, tracked.settled, shuffled)
                tracked.shuffled = verdict.shuffled
            card = self.card_baseline
            if card is not None and baseline is not card and self._pair_stream(name):
                domain = self.judge(card, live, shuffled=shuffled)
        tracked.evaluation = Evaluation(tracked.stream.total, live, verdict, domain, self.clock())
        return tracked.evaluation

    def judge(
        self,
        baseline: Baseline,
        live: np.ndarray,
        vocabulary: bool = False,
        settled: Settled | None = None,
        shuffled: bool = False,
    ) -> Verdict:
        """The KS-family level and the shift test's level; the higher one counts (each calibrated on its own).

        `vocabulary` (the token streams): per-text rates with a spike at 0, where every distance flags any change
        of vocabulary; what matters is a rise of the mean rate, so the KS p-value gate pairs with the mean's
        increase (O2V_DRIFT_TOKEN_MARGIN_*), and a fall is no risk. `settled`: live scores the shift test's reference
        absorbed (`_settle`). `shuffled`: whether the stream counted as shuffled traffic so far (`ordering.py`)."""
        c = self.config
        values = compare(baseline.scores, live, baseline.edges).as_dict()
        rho, shuffled = live_correlation(live, baseline.ordering or 0.0, live.size >= c.window, shuffled)
        if rho > 0.0:  # an ordered window: its KS p-value at its effective size (`ordering.py`)
            effective = live.size / inflation(rho, live.size)
            values["ks_pvalue"] = max(values["ks_pvalue"], ks_pvalue(values["linf"], effective, baseline.scores.size))
        values["ordering"] = rho
        limits = dict(c.limits)
        if vocabulary:
            values["mean_increase"] = float(live.mean() - baseline.scores.mean())
            limits = {GATE: c.limits[GATE], "mean_increase": c.token_margin}
        enter, hold = level(values, limits), level(values, limits, 1.0 - c.hysteresis)
        test = self._shift_test(baseline, vocabulary)
        if test is not None:
            recent = min(test.window, live.size)
            z = test.statistic(live, settled) / np.sqrt(inflation(rho, recent))
            values["shift_z"], limits["shift_z"] = z, Limit(test.warning, test.drift)
            for lvl in (1, 2):
                if limits["shift_z"].severity(abs(values["shift_z"]), lvl) >= 1.0:
                    enter = max(enter, lvl)
                if limits["shift_z"].severity(abs(values["shift_z"]), lvl) >= 1.0 - c.hysteresis:
                    hold = max(hold, lvl)
        return Verdict(values, limits, enter, hold, shuffled)

    def _shift_test(self, baseline: Baseline, vocabulary: bool) -> ShiftTest | None:
        """The baseline's calibrated shift test where it applies: the test is on, the baseline continuous, and the
        stream's scores are not token rates (`judge`). Simulated on first use, then kept by the baseline."""
        if self.config.shift is None or not baseline.continuous or vocabulary:
            return None
        return baseline.shift_test(self.config.shift)

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
            "dropped_token_requests": self.dropped_token_requests,
            "checking": self.cost.report(self.config.cpu_budget),
            "classify": self.classify.report(),
            "embeddings": self.embeddings.report() if self.embeddings is not None else None,
            "streams": streams,
        }

    def metrics(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """What a Prometheus scrape reads (`report(detail=False)`, `score_buckets()`), taken in one hold of the
        check lock: a scrape during a check waits for it, so it never shows a status from before the check beside
        statistics or counts from after it."""
        with self._lock:
            return self.report(detail=False), self.score_buckets()

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

    def export(self, name: str) -> dict[str, Any]:
        """The live window behind a stream's verdict: its report, its scores, and with O2V_DRIFT_KEEP_TEXTS the
        kept texts (token streams) and pairs (the stream's /similarity pairs, as Object2Vec records); else empty
        lists. NotFound for an unknown stream."""
        with self._lock:
            tracked = self._streams.get(name)
            if tracked is None:
                raise NotFound.stream(name)
            report = self._describe(name, tracked, detail=False)
            scores = tracked.stream.window().tolist()
        texts = self.texts.recent() if self.texts is not None and name in TOKEN_STREAMS else []
        pairs = self.texts.recent_pairs(name) if self.texts is not None else []
        return {"stream": name, "verdict": report, "scores": scores, "texts": texts, "pairs": pairs}

    def stream_report(self, name: str) -> dict[str, Any]:
        """NotFound for an unknown stream, such as one a concurrent delete_stream just removed."""
        with self._lock:
            tracked = self._streams.get(name)
            if tracked is None:
                raise NotFound.stream(name)
            return self._describe(name, tracked, detail=True)

    def _describe(self, name: str, tracked: _Tracked, detail: bool) -> dict[str, Any]:
        ev = self._evaluate(name, tracked)
        baseline = self.baseline(name)
        status = tracked.tracker.status
        live = summary(ev.live)
        domain: dict[str, Any] | None = None
        if ev.domain is not None and self.card_baseline is not None:
            domain = {
                "status": LEVELS[ev.domain.enter],
                "baseline": self.card_baseline.described,
                "statistics": self._statistics(ev.domain),
            }
        out: dict[str, Any] = {
            "status": status,
            "raw_status": LEVELS[ev.verdict.enter] if ev.verdict is not None else PENDING,
            "changed_at": iso(tracked.changed_at),
            "n_live": int(ev.live.size),
            "n_baseline": int(baseline.scores.size) if baseline is not None else 0,
            "n_settled": tracked.settled.n,
            "n_total": tracked.stream.total,
            "min_samples": self.config.min_samples,
            "statistics": self._statistics(ev.verdict) if ev.verdict is not None else {},
            "baseline": baseline.described if baseline is not None else None,
            "live": live,
            "domain": domain,
            "advice": advice(
                name,
                status,
                baseline.described if baseline is not None else None,
                live.get("mean"),  # type: ignore[arg-type]
                self.card,
                domain["status"] if domain is not None else None,
            ),
        }
        if name == LABEL_STREAM:
            out["labels"] = self.labels.ranking()
        if detail:
            out["histogram"] = shared_histogram(baseline.scores, ev.live) if baseline is not None else None
            out["history"] = [{**b, "start": iso(b["start"])} for b in tracked.stream.buckets()]
        return out

    def _statistics(self, verdict: Verdict) -> dict[str, Any]:
        """Each statistic with the thresholds that judged it and which one it crossed."""
        out: dict[str, Any] = {}
        for key, value in verdict.values.items():
            entry: dict[str, Any] = {"value": round(value, 6)}
            limit = verdict.limits.get(key)
            if limit is not None:
                shown = abs(value) if key == "shift_z" else value  # two-sided: the sign says the direction
                crossed = (lvl for lvl in ("drift", "warning") if limit.severity(shown, LEVELS.index(lvl)) >= 1.0)
                entry.update({k: round(v, 6) for k, v in limit.as_dict().items()}, crossed=next(crossed, None))
            out[key] = entry
        return out

    # persistence
    def _card_id(self) -> str | None:
        b = self.card_baseline
        return None if b is None else f"{b.source}@{b.created}"

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "card": self._card_id(),
                "labels": self.labels.state(),
                "streams": {
                    name: {
                        "window": t.stream.state(),
                        "tracker": t.tracker.state(),
                        "baseline": t.baseline.state() if t.baseline is not None else None,
                        "checked_total": t.checked_total,
                        "changed_at": t.changed_at,
                        "settled": {**t.settled.state(), "upto": t.settled_upto},
                        "shuffled": t.shuffled,
                    }
                    for name, t in list(self._streams.items())  # a copy: _track adds under _create_lock
                },
                "embeddings": self.embeddings.state() if self.embeddings is not None else None,
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
        if not model_changed:
            self.labels.restore(state.get("labels") or {})
            if self.embeddings is not None:
                self.embeddings.restore(state.get("embeddings") or {})
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
            settled = saved.get("settled") or {}
            tracked.settled, tracked.settled_upto = Settled.restore(settled), int(settled.get("upto", 0))
            tracked.changed_at = saved.get("changed_at")
            tracked.shuffled = saved.get("shuffled") is True

    def close(self) -> None:
        """Save and stop; a failed save (a full disk) is logged, not raised, so the rest of the shutdown runs: the
        state file keeps what the last successful save wrote."""
        try:
            self.save()
        except OSError as exc:
            path = str(self.store.path) if self.store is not None else None
            log.warning(json.dumps({"event": "drift_state_not_saved", "path": path, "error": str(exc)}))
        self.notifier.close()
