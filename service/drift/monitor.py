"""The drift monitor: one object over the parts that record (`Recorder`), hold the streams (`StreamRegistry`),
choose baselines (`BaselineChoice`), judge (`Judge`), check (`StreamChecks`), report (`Reports`) and persist."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np

from service.drift.baseline import Baseline, BaselineChoice
from service.drift.checks import CheckRound, StreamChecks
from service.drift.classify import ClassifyMonitor, ReferenceSource
from service.drift.config import DriftConfig
from service.drift.describe import Reports
from service.drift.embeddings import SIMILARITY_FAMILY, EmbeddingMonitor, load_sample
from service.drift.judge import Judge
from service.drift.labels import LabelMonitor
from service.drift.models import CheckCost
from service.drift.notify import StatusNotifier
from service.drift.persistence import StateWriter, monitor_state, restore_state
from service.drift.recording import Recorder
from service.drift.registry import StreamRegistry, TrackedStream
from service.drift.status import PENDING
from service.drift.store import DriftStore
from service.drift.texts import PairRows, TextKeeper
from service.drift.token_queue import TokenQueue
from service.drift.tokens import TokenModel, TokenRates
from service.errors import ServiceError
from service.settings import Settings
from service.text import TextTokenizer

DAMAGED = (ServiceError, ValueError, TypeError, KeyError, AttributeError, IndexError)  # a state of wrong content


class DriftMonitor:
    """Records in O(1) on the request path; the checking thread (`run_due_checks`) judges a stream once
    `check_every` new scores arrived. Checks and reads of the verdicts hold one check lock, so a read never shows
    half a check; recording never takes it. `judge` replaces the verdicts' judge (a test's hook)."""

    def __init__(
        self,
        config: DriftConfig,
        card: dict[str, Any] | None = None,
        store: DriftStore | None = None,
        notifier: StatusNotifier | None = None,
        clock: Callable[[], float] = time.time,
        tokens: tuple[TokenRates, TokenModel] | None = None,
        embedding_sample: np.ndarray | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.config, self.card, self.clock, self.store = config, card or {}, clock, store
        self.notifier = notifier or StatusNotifier(None)
        self.token_rates = tokens[0] if tokens is not None else None
        self.wake = threading.Event()  # set when some stream is due for a check
        self.cost = CheckCost()
        self._assemble(tokens, embedding_sample, judge or Judge(config))
        if store is not None:
            try:
                parts = self.registry, self.labels, self.classify, self.embeddings
                restore_state(store.load(), self.baselines.card_id(), config, *parts)
            except DAMAGED as exc:
                store.set_aside(f"{type(exc).__name__}: {exc}")
                self._assemble(tokens, embedding_sample, self.checks.judge)  # nothing of the state half-restored

    def _assemble(self, tokens: tuple[TokenRates, TokenModel] | None, sample: np.ndarray | None, judge: Judge) -> None:
        c = self.config
        self.writer = StateWriter(self.store)
        self.baselines = BaselineChoice(self.card, c, tokens[1] if tokens else None)
        self.registry = StreamRegistry(c, token_streams=tokens is not None)
        self.checks = StreamChecks(c, self.registry, judge, self.baselines, self.writer, self.clock, self._emit)
        self.judge = judge.verdict  # the verdict on a live window against a baseline (bench.drift calls it)
        self.labels = LabelMonitor(
            c.window, c.learn_warmup, c.learn_size, c.max_labels, c.label_min_count, c.label_alpha
        )
        self.classify = ClassifyMonitor(
            c.window, c.min_samples, c.max_streams, c.accuracy_fall, c.confirm_checks, c.clear_checks
        )
        queue = TokenQueue(tokens[0], c.token_queue, c.window, c.check_every, c.check_interval_s) if tokens else None
        self.texts = TextKeeper(c.keep_texts, c.keep_texts_max_age_s, self.clock) if c.keep_texts else None
        self.embeddings = None if sample is None else EmbeddingMonitor.of(sample, c)
        parts = self.registry, self.labels, self.classify, queue, self.texts, self.embeddings
        self.recorder = Recorder(*parts, self.writer, self.wake, self.clock)
        self.round = CheckRound(self.checks, self.recorder, self.classify, self.embeddings)
        self.reports = Reports(self.checks, self.card, self.recorder, self.classify, self.cost)

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
        return name in self.registry

    def create_stream(self, name: str) -> bool:
        """Make the stream exist (True if it is new); InvalidStream for a bad name or past max_streams."""
        created = self.registry.create(name)
        self.writer.dirty |= created
        return created

    def delete_stream(self, name: str) -> None:
        """Forget a stream: window, history, status and uploaded baseline; persisted before returning.
        NotFound if there is none, FixedStream for a built-in or configured stream (they always exist)."""
        with self.checks.lock:
            self.registry.remove(name)
        self.writer.dirty = True
        self.save()

    def streams(self) -> list[str]:
        """The built-in streams first, then the others by name."""
        return self.registry.names()

    # recording (`Recorder`): the request path, where nothing raises or waits for a check
    def record(self, name: str, score: float) -> bool:
        """Add one score; returns False if it was dropped."""
        return self.recorder.record_many(name, (score,)) == 1

    def record_many(self, name: str, scores: Iterable[float]) -> int:
        """Add one request's scores to a stream (made on first use); returns how many were kept."""
        return self.recorder.record_many(name, scores)

    def record_label(self, label: str | None, confidence: float) -> None:
        """One classification's answer (None: out of scope) and confidence, for the per-label ranking."""
        self.recorder.record_label(label, confidence)

    def record_classification(
        self, collection: str, label_key: str, reference: ReferenceSource, label: Any, confidence: float
    ) -> None:
        """One classify answer of a collection (canonical label, None: out of scope), for that collection's own
        stream; `reference` computes the collection's leave-one-out answers, on the checking thread, once."""
        self.recorder.record_classification(collection, label_key, reference, label, confidence)

    def forget_collection(self, collection: str) -> None:
        """A deleted collection's classify streams go, so they neither hold a slot nor come back after a restart."""
        self.classify.forget(collection)
        self.writer.dirty = True

    def record_tokens(self, rows: list[list[int]], lengths: list[int], texts: Sequence[str] | None = None) -> None:
        """One request's token rows (cut) and lengths (before the cut), queued for the checking thread; `texts`
        are kept only with O2V_DRIFT_KEEP_TEXTS."""
        self.recorder.record_tokens(rows, lengths, texts)

    def record_pairs(
        self, name: str, pairs: Sequence[tuple[str, str]], rows: PairRows, scores: Sequence[float]
    ) -> None:
        """One /similarity request's pairs with their token ids and scores, kept for `export` only with
        O2V_DRIFT_KEEP_TEXTS and only for a stream that exists (the scores went through `record_many` first)."""
        self.recorder.record_pairs(name, pairs, rows, scores)

    def record_embeddings(self, vectors: np.ndarray) -> None:
        """One request's embeddings, for the embedding-drift test of its route family."""
        self.recorder.record_embeddings(vectors)

    @property
    def dropped(self) -> int:
        """Scores, labels and embeddings the request path could not keep."""
        return self.recorder.dropped

    # baselines
    def baseline(self, name: str) -> Baseline | None:
        return self.checks.baseline(name, self.registry.get(name))

    def set_baseline(
        self, name: str, scores: Iterable[float], source: str, texts: np.ndarray | None = None, made_for: bool = False
    ) -> dict[str, Any]:
        """Replace a stream's baseline, reset its status to no verdict, and persist before returning; when the save
        fails nothing changed (`StreamChecks.replace_baseline`). `texts`: the embeddings of an uploaded baseline's
        pairs, which become the `similarity` route family's embedding reference (the card's sample stays its
        domain reference): computed first, stored with the baseline, and used only once stored, so a failed save
        (a full disk) leaves the family's reference as it was."""
        embeddings, reference = self.embeddings, None
        if texts is not None and embeddings is not None:
            reference = embeddings.uploaded_reference(texts, f"uploaded:{name}")
        pending = {SIMILARITY_FAMILY: reference} if reference is not None else {}

        def use() -> None:
            if embeddings is not None and reference is not None:
                embeddings.set_reference(SIMILARITY_FAMILY, reference)
                self.writer.dirty = True  # the family's restarted status

        def persist() -> None:
            self.writer.commit(partial(self.state, pending), use)

        return self.checks.replace_baseline(name, scores, source, persist, made_for).described

    # checks: the worker thread (or a benchmark) calls these
    def prepare(self) -> None:
        """Simulate the shift test's limits of the baselines known at start, so no request waits for it."""
        self.checks.prepare()

    def run_due_checks(self, paced: bool = False) -> int:
        """Every input's due checks (`CheckRound`; `paced`: the worker's); returns how many streams were checked."""
        return self.round.run(paced)

    def next_check_in(self) -> float | None:
        """Seconds until a paced check may run (None: none waits)."""
        return self.round.next_in()

    def check(self, name: str) -> str:
        """Evaluate a due stream and advance its status (`StreamChecks.check`); returns the status."""
        return self.checks.check(name)

    def _emit(self, name: str, tracked: TrackedStream, old: str, new: str) -> None:
        event = self.reports.status_change(name, tracked, old, new)
        self.notifier.notify(event.as_json(), deliver=PENDING not in (old, new))

    # reading (`Reports`)
    def report(self, detail: bool = True) -> dict[str, Any]:
        """The GET /drift document: every stream's status, statistics, thresholds, summaries and advice."""
        return self.reports.document(detail).as_json()

    def stream_report(self, name: str) -> dict[str, Any]:
        """NotFound for an unknown stream, such as one a concurrent delete_stream just removed."""
        return self.reports.one(name).as_json()

    def export(self, name: str) -> dict[str, Any]:
        """The live window behind a stream's verdict; with O2V_DRIFT_KEEP_TEXTS its texts or pairs."""
        return self.reports.export(name, self.texts).as_json()

    def metrics(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """What a Prometheus scrape reads, in one hold of the check lock: a scrape during a check waits for it."""
        with self.checks.lock:
            return self.report(detail=False), self.score_buckets()

    def score_buckets(self) -> dict[str, dict[str, Any]]:
        """Per stream, the recorded scores' counts per SCORE_EDGES bucket and the baseline's CDF at the edges."""
        return self.reports.score_buckets()

    # persistence
    def state(self, pending: dict[str, Any] | None = None) -> dict[str, Any]:
        """The saved state; `pending`: uploaded embedding references to store before they are used."""
        parts = self.labels, self.classify, self.registry, self.embeddings
        with self.checks.lock:
            return monitor_state(self.baselines.card_id(), *parts, pending)

    def save(self) -> bool:
        """Write the state if anything changed since the last write; returns whether it wrote."""
        return self.writer.save(self.state)

    def close(self) -> None:
        """Save (`StateWriter.close`) and stop the webhook thread."""
        self.writer.close(self.state)
        self.notifier.close()
