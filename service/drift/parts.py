"""The drift monitor's parts for one served model, wired together, and their state as one document: restored at
start, carried across a change of the served model, and written with an upload before the upload is used."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from service.drift.baseline import BaselineChoice
from service.drift.checks import CheckRound, StatusChanged, StreamChecks
from service.drift.classify import ClassifyMonitor
from service.drift.config import DriftConfig
from service.drift.describe import Reports
from service.drift.embeddings import SIMILARITY_FAMILY, EmbeddingMonitor, load_sample
from service.drift.judge import Judge
from service.drift.labels import LabelMonitor
from service.drift.models import CheckCost
from service.drift.persistence import StateWriter, monitor_state, restore_state
from service.drift.recording import Recorder
from service.drift.registry import StreamRegistry
from service.drift.store import DriftStore
from service.drift.texts import TextKeeper
from service.drift.token_queue import TokenQueue
from service.drift.tokens import TokenModel, TokenRates
from service.errors import ServiceError
from service.text import TextTokenizer

DAMAGED = (ServiceError, ValueError, TypeError, KeyError, AttributeError, IndexError)  # a state of wrong content
Tokens = tuple[TokenRates, TokenModel]


def model_inputs(
    model_dir: str | Path | None, tokenizer: TextTokenizer | None
) -> tuple[Tokens | None, np.ndarray | None]:
    """What a model directory gives the monitor: with its tokenizer the token streams' rates and model (trained
    rows, validation rates), and its embedding sample (None without one)."""
    tokens = None
    if tokenizer is not None:
        model = TokenModel.load(model_dir, tokenizer.vocab_size)
        tokens = (TokenRates(model.trained, tokenizer.unk_id, tokenizer.max_seq_len), model)
    return tokens, load_sample(model_dir)


@dataclass(frozen=True)
class Lasting:
    """What outlives a change of the served model: the configuration, the state file, the clock, and the checking
    thread's wake event, cost account and status-change callback."""

    config: DriftConfig
    store: DriftStore | None
    clock: Callable[[], float]
    wake: threading.Event
    cost: CheckCost
    changed: StatusChanged


class MonitorParts:
    """Built from one model's card, token rates and embedding sample; replaced whole when the model changes, so no
    part keeps another model's scores by accident. The judge is kept across models (a test's hook)."""

    def __init__(
        self, lasting: Lasting, card: dict[str, Any], tokens: Tokens | None, sample: np.ndarray | None, judge: Judge
    ) -> None:
        c, clock = lasting.config, lasting.clock
        self.lasting, self.card, self.token_rates = lasting, card, tokens[0] if tokens is not None else None
        self.writer = StateWriter(lasting.store)
        self.baselines = BaselineChoice(card, c, tokens[1] if tokens else None)
        self.registry = StreamRegistry(c, token_streams=tokens is not None)
        self.checks = StreamChecks(c, self.registry, judge, self.baselines, self.writer, clock, lasting.changed)
        self.labels = LabelMonitor(
            c.window, c.learn_warmup, c.learn_size, c.max_labels, c.label_min_count, c.label_alpha
        )
        self.classify = ClassifyMonitor(
            c.window, c.min_samples, c.max_streams, c.accuracy_fall, c.confirm_checks, c.clear_checks
        )
        queue = TokenQueue(tokens[0], c.token_queue, c.window, c.check_every, c.check_interval_s) if tokens else None
        self.texts = TextKeeper(c.keep_texts, c.keep_texts_max_age_s, clock) if c.keep_texts else None
        self.embeddings = None if sample is None else EmbeddingMonitor.of(sample, c)
        parts = self.registry, self.labels, self.classify, queue, self.texts, self.embeddings
        self.recorder = Recorder(*parts, self.writer, lasting.wake, clock)
        self.round = CheckRound(self.checks, self.recorder, self.classify, self.embeddings)
        self.reports = Reports(self.checks, card, self.recorder, self.classify, lasting.cost)

    @classmethod
    def restored(
        cls, lasting: Lasting, card: dict[str, Any], tokens: Tokens | None, sample: np.ndarray | None, judge: Judge
    ) -> MonitorParts:
        """The parts with the state file's content; a damaged state file is set aside and the parts start afresh,
        with nothing of it half-restored."""
        parts = cls(lasting, card, tokens, sample, judge)
        if lasting.store is not None:
            try:
                parts.restore(lasting.store.load())
            except DAMAGED as exc:
                lasting.store.set_aside(f"{type(exc).__name__}: {exc}")
                return cls(lasting, card, tokens, sample, judge)
        return parts

    def for_model(self, card: dict[str, Any], tokens: Tokens | None, sample: np.ndarray | None) -> MonitorParts:
        """What a restart with another model would find, now (the caller holds the check lock): the state a shutdown
        would have written, restored under another card, so only the uploaded baselines stay."""
        saved = self.state()
        saved["card"] = {"replaced": saved["card"]}  # never the new card's id, even for two cards without one
        parts = MonitorParts(self.lasting, card, tokens, sample, self.checks.judge)
        parts.restore(saved)
        return parts

    def state(self, pending: dict[str, Any] | None = None) -> dict[str, Any]:
        """The saved state; `pending`: uploaded embedding references to store before they are used."""
        with self.checks.lock:
            return monitor_state(
                self.baselines.card_id(), self.labels, self.classify, self.registry, self.embeddings, pending
            )

    def restore(self, saved: dict[str, Any]) -> None:
        card_id, c = self.baselines.card_id(), self.lasting.config
        restore_state(saved, card_id, c, self.registry, self.labels, self.classify, self.embeddings)

    def upload_persist(self, texts: np.ndarray | None, source: str) -> Callable[[], None]:
        """What stores a baseline upload: with `texts` (the embeddings of its pairs) the `similarity` route family's
        embedding reference is computed now, written with the state, and used only once written, so a failed save
        (a full disk) leaves the family's reference as it was; the card's sample stays its domain reference."""
        embeddings, reference = self.embeddings, None
        if texts is not None and embeddings is not None:
            reference = embeddings.uploaded_reference(texts, source)
        if embeddings is None or reference is None:
            return partial(self.writer.commit, self.state, lambda: None)

        def use() -> None:
            embeddings.set_reference(SIMILARITY_FAMILY, reference)
            self.writer.dirty = True  # the family's restarted status

        return partial(self.writer.commit, partial(self.state, {SIMILARITY_FAMILY: reference}), use)
