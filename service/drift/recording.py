"""The request path of the drift monitor: every kind of input is appended in O(1), never raises and never waits
for a check; what cannot be kept is counted in `dropped`. A check that became due sets `wake`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from service.drift.classify import ClassifyMonitor, ReferenceSource
from service.drift.embeddings import INGEST, EmbeddingMonitor, current_family
from service.drift.labels import LabelMonitor
from service.drift.persistence import StateWriter
from service.drift.registry import StreamRegistry
from service.drift.stream import finite_scores
from service.drift.texts import PairRows, TextKeeper
from service.drift.token_queue import TokenQueue

MAX_LABEL_CHARS = 200


class Recorder:
    def __init__(
        self,
        registry: StreamRegistry,
        labels: LabelMonitor,
        classify: ClassifyMonitor,
        tokens: TokenQueue | None,
        texts: TextKeeper | None,
        embeddings: EmbeddingMonitor | None,
        writer: StateWriter,
        wake: threading.Event,
        clock: Callable[[], float],
    ) -> None:
        self.registry, self.labels, self.classify, self.tokens = registry, labels, classify, tokens
        self.texts, self.embeddings, self.writer, self.wake = texts, embeddings, writer, wake
        self.check_every, self.clock = registry.config.check_every, clock
        self.dropped = 0

    def record_many(self, name: str, scores: Iterable[float]) -> int:
        """Add one request's scores to a stream (made on first use). Non-finite values, bad names and streams
        past max_streams are dropped. Returns how many were kept."""
        values, bad = finite_scores(scores)
        tracked = self.registry.track(name)
        if tracked is None:
            bad, values = bad + len(values), []
        self.dropped += bad
        if not values or tracked is None:
            return 0
        if tracked.record(values, self.clock(), self.check_every):
            self.wake.set()
        self.writer.dirty = True
        return len(values)

    def record_label(self, label: str | None, confidence: float) -> None:
        try:
            self.labels.record(None if label is None else str(label)[:MAX_LABEL_CHARS], float(confidence))
        except (TypeError, ValueError):
            self.dropped += 1
            return
        self.writer.dirty = True

    def record_classification(
        self, collection: str, label_key: str, reference: ReferenceSource, label: Any, confidence: float
    ) -> None:
        try:
            self.classify.record(collection, label_key, reference, label, float(confidence))
        except (TypeError, ValueError):
            self.dropped += 1
            return
        self.writer.dirty = True
        if self.classify.due(self.check_every):
            self.wake.set()

    def record_tokens(self, rows: list[list[int]], lengths: list[int], texts: Sequence[str] | None = None) -> None:
        if self.tokens is None or not rows or current_family() == INGEST:
            return
        if self.tokens.put(texts if self.texts is not None else None, rows, lengths):
            self.wake.set()

    def record_pairs(
        self, name: str, pairs: Sequence[tuple[str, str]], rows: PairRows, scores: Sequence[float]
    ) -> None:
        if self.texts is not None and name in self.registry:
            self.texts.keep_pairs(name, pairs, rows, scores)

    def record_embeddings(self, vectors: np.ndarray) -> None:
        if self.embeddings is None or vectors.ndim != 2 or vectors.shape[0] == 0 or current_family() == INGEST:
            return
        if vectors.shape[1] != self.embeddings.reference.shape[1]:  # e.g. a SageMaker endpoint of another model
            self.dropped += vectors.shape[0]
            return
        self.writer.dirty = True
        if self.embeddings.record(vectors):
            self.wake.set()
