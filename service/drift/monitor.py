"""The drift monitor: one object over the parts that record (`Recorder`), hold the streams (`StreamRegistry`),
choose baselines (`BaselineChoice`), judge (`Judge`), check (`StreamChecks`), report (`Reports`) and persist, built
for the served model (`MonitorParts`) and rebuilt when it changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.drift.baseline import Baseline
from service.drift.classify import ReferenceSource
from service.drift.config import DriftConfig
from service.drift.judge import Judge
from service.drift.models import CheckCost
from service.drift.notify import StatusNotifier
from service.drift.parts import Lasting, MonitorParts, model_inputs
from service.drift.registry import TrackedStream
from service.drift.status import PENDING
from service.drift.store import DriftStore
from service.drift.texts import PairRows
from service.drift.tokens import TokenModel, TokenRates
from service.settings import Settings
from service.text import TextTokenizer


class DriftMonitor:
    """Records in O(1) on the request path; the checking thread (`run_due_checks`) judges a stream once
    `check_every` new scores arrived. Checks and reads of the verdicts hold one check lock, so a read never shows
    half a check; recording never takes it. `judge` replaces the verdicts' judge (a test's hook). The parts of the
    served model (`MonitorParts`) are reached under their own names here."""

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
        self.config, self.clock, self.store = config, clock, store
        self.notifier = notifier or StatusNotifier(None)
        self.wake = threading.Event()  # set when some check comes due
        self.cost = CheckCost()
        lasting = Lasting(config, store, clock, self.wake, self.cost, self._emit)
        self._use(MonitorParts.restored(lasting, card or {}, tokens, embedding_sample, judge or Judge(config)))

    def _use(self, p: MonitorParts) -> None:
        self.parts, self.card, self.token_rates, self.writer = p, p.card, p.token_rates, p.writer
        self.baselines, self.registry, self.checks = p.baselines, p.registry, p.checks
        self.judge = p.checks.judge.verdict  # the verdict on a live window against a baseline (bench.drift calls it)
        self.labels, self.classify, self.texts, self.embeddings = p.labels, p.classify, p.texts, p.embeddings
        self.recorder, self.round, self.reports = p.recorder, p.round, p.reports

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        card: dict[str, Any],
        tokenizer: TextTokenizer | None = None,
        model_dir: Path | None = None,
    ) -> DriftMonitor:
        """The service's monitor: O2V_DRIFT_* settings, state under data_dir/.o2v/drift, the served model's card,
        and with the model's `TextTokenizer` the token streams (the model dir's trained rows and rates); embedding
        drift where the model dir (default: O2V_MODEL_DIR) has an embedding sample."""
        config = DriftConfig.from_settings(settings)
        notifier = StatusNotifier(config.webhook_url, config.webhook_timeout_s, config.webhook_retries)
        tokens, sample = model_inputs(model_dir or getattr(settings, "model_dir", None), tokenizer)
        store = DriftStore.in_data_dir(settings.data_dir)
        return cls(config, card, store, notifier, tokens=tokens, embedding_sample=sample)

    def serve_model(self, card: dict[str, Any], model_dir: Path | None, tokenizer: TextTokenizer | None) -> bool:
        """The default model changed while serving (a promotion, a rollback): what a restart with that model does,
        now. Another card (another validation distribution) keeps only the uploaded baselines: windows, statuses,
        learned baselines, classify and label references start afresh, and the card baseline, token rates and
        embedding sample become the new model's. Returns whether anything was reset (False: the same card)."""
        if (card or {}) == self.card:
            return False
        tokens, sample = model_inputs(model_dir, tokenizer)
        with self.checks.lock:
            self._use(self.parts.for_model(card or {}, tokens, sample))
        self.writer.dirty = True  # written by the checking thread's next save, not on the request path
        return True

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
        pairs, which become the `similarity` route family's embedding reference once stored
        (`MonitorParts.upload_persist`)."""
        persist = self.parts.upload_persist(texts, f"uploaded:{name}")
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
        return self.parts.state(pending)

    def save(self) -> bool:
        """Write the state if anything changed since the last write; returns whether it wrote."""
        return self.writer.save(self.state)

    def close(self) -> None:
        """Save (`StateWriter.close`) and stop the webhook thread."""
        self.writer.close(self.state)
        self.notifier.close()
