"""A stream's reference distribution: the served model's validation scores, an upload, or a first live window."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service.drift.config import DriftConfig
from service.drift.errors import InvalidBaseline
from service.drift.ordering import intrablock_correlation
from service.drift.shift import (
    MAX_ATOM,
    MIN_DISTINCT,
    ShiftParams,
    ShiftTest,
    calibrate,
    known_thresholds,
    thresholds_entry,
)
from service.drift.stats import quantile_edges, summary
from service.drift.streams import TOKEN_STREAMS
from service.drift.tokens import RATES_FILE, TokenModel

MIN_BASELINE = 10
STATE_DIGITS = 7
CARD = "model_card:"  # source prefix of the model card's validation scores
LEARNED = "live:"  # source prefix of a baseline learned from a stream's own first live scores
CALIBRATIONS = "shift_calibrations"  # the card's validation_score_distribution entry of stored shift-test limits
MODEL = "model_dir:"  # source prefix of a baseline from another file of the model directory (token rates)


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class Baseline:
    """Scores plus where they came from; the PSI/JS bin edges and the summary are computed once."""

    scores: np.ndarray
    source: str
    created: float
    bins: int
    ordering: float | None = None  # ρ of the scores in the order given (`ordering.py`); kept, since they are sorted
    calibrations: Any = None  # the model card's stored shift-test limits (`known_thresholds`), for a card baseline
    edges: np.ndarray = field(init=False)
    described: dict[str, Any] = field(init=False)
    _shift: ShiftTest | None = field(default=None, init=False, repr=False)
    _shift_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _saved: list[float] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.ordering is None:
            self.ordering = intrablock_correlation(np.asarray(self.scores, dtype=np.float64))
        # rounded as the state file keeps them: a restarted monitor has the same baseline, so the same thresholds
        self.scores = np.sort(np.round(np.asarray(self.scores, dtype=np.float64), STATE_DIGITS))
        self.edges = quantile_edges(self.scores, self.bins)
        self.described = {
            "source": self.source,
            "kind": self.kind,
            "created": iso(self.created),
            "ordering": round(self.ordering, 6),
            **summary(self.scores),
        }

    @property
    def kind(self) -> str:
        """`card` (validation scores), `model` (the validation texts' token rates), `learned` (the stream's own first
        live scores) or `uploaded`."""
        if self.source.startswith((CARD, MODEL)):
            return "card" if self.source.startswith(CARD) else "model"
        return "learned" if self.source.startswith(LEARNED) else "uploaded"

    @property
    def continuous(self) -> bool:
        """Enough distinct values, and no value repeated often, for the shift test's kernel density."""
        _, counts = np.unique(self.scores, return_counts=True)
        return counts.size >= MIN_DISTINCT and counts.max() <= MAX_ATOM * self.scores.size

    def shift_test(self, params: ShiftParams) -> ShiftTest:
        """The calibrated shift test of this baseline, simulated once (on the checking thread, never a request)."""
        with self._shift_lock:  # the worker's `prepare` and a first check may both ask: simulate once
            if self._shift is None:
                self._shift = calibrate(self.scores, params, known_thresholds(self.calibrations, self.scores, params))
            return self._shift

    @classmethod
    def of(
        cls,
        scores: Iterable[float],
        source: str,
        bins: int,
        created: float | None = None,
        ordering: float | None = None,
    ) -> Baseline:
        """Validate and build: at least MIN_BASELINE finite scores, in their natural order unless `ordering` says
        what it was."""
        arr = np.asarray(list(scores), dtype=np.float64)
        if arr.ndim != 1 or arr.size < MIN_BASELINE:
            raise InvalidBaseline(f"a baseline needs at least {MIN_BASELINE} scores, got {arr.size}")
        if not np.all(np.isfinite(arr)):
            raise InvalidBaseline("baseline scores must be finite numbers")
        return cls(arr, source, created if created is not None else time.time(), bins, ordering)

    def state(self) -> dict[str, Any]:
        """The scores as the state file keeps them, made once: every save of the monitor's state writes every
        baseline, and rounding 100,000 scores one by one took a third of such a save."""
        if self._saved is None:
            self._saved = [round(float(s), STATE_DIGITS) for s in self.scores]
        return {
            "scores": self._saved,
            "source": self.source,
            "created": self.created,
            "ordering": self.ordering,
        }

    @classmethod
    def restore(cls, state: dict[str, Any], bins: int) -> Baseline:
        saved = state.get("ordering")
        ordering = float(saved) if isinstance(saved, int | float) and math.isfinite(saved) and saved >= 0 else 0.0
        return cls.of(state["scores"], state["source"], bins, state.get("created"), ordering)


def card_baseline(card: dict[str, Any], bins: int) -> Baseline | None:
    """The validation score distribution the model card carries (its raw `scores`), or None without one."""
    dist = card.get("validation_score_distribution") or {}
    scores = [s for s in dist.get("scores") or [] if isinstance(s, int | float) and math.isfinite(s)]
    if len(scores) < MIN_BASELINE:
        return None
    name = card.get("name", "model")
    baseline = Baseline.of(scores, f"{CARD}{name}:validation", bins, created=card_time(card))
    baseline.calibrations = dist.get(CALIBRATIONS)
    return baseline


def card_calibrations(card: dict[str, Any], config: DriftConfig) -> list[dict[str, Any]]:
    """The card's CALIBRATIONS entry: its validation scores' shift-test limits under `config` (an exporter's
    settings), so a replica started with those settings judges from its first check without simulating them."""
    baseline = card_baseline(card, config.psi_bins)
    if baseline is None or config.shift is None or not baseline.continuous:
        return []
    return [thresholds_entry(baseline.scores, config.shift)]


def card_time(card: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(card.get("created")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class BaselineChoice:
    """Which baseline judges a stream, in order: its own (uploaded, or learned from its first live scores); for a
    token stream the model directory's validation-text rates; the model card's validation scores for a stream of
    pair cosines unless every stream learns (O2V_DRIFT_BASELINE=learn); else none yet (the stream learns its own)."""

    def __init__(self, card: dict[str, Any], config: DriftConfig, tokens: TokenModel | None = None) -> None:
        bins = config.psi_bins
        self.card = card_baseline(card, bins)
        self.learn, self.live_streams = config.learn, config.live_baseline_streams
        self.tokens: dict[str, Baseline] = {}
        for name, values in (tokens.validation if tokens is not None else {}).items():
            if len(values) >= MIN_BASELINE:
                source = f"{MODEL}{RATES_FILE}:validation texts"
                self.tokens[name] = Baseline.of(values, source, bins, card_time(card))

    def of(self, name: str, own: Baseline | None) -> Baseline | None:
        """The baseline of stream `name`, whose own baseline is `own`."""
        if own is not None:
            return own
        if name in TOKEN_STREAMS:  # the validation texts' rates, whatever the score baseline mode
            return self.tokens.get(name)
        return None if self.learns(name) else self.card

    def learns(self, name: str) -> bool:
        return self.learn or not self.pair_stream(name)

    def pair_stream(self, name: str) -> bool:
        """Its scores are pair cosines, so the model card's validation cosines describe them."""
        return name not in self.live_streams and name not in TOKEN_STREAMS

    def card_id(self) -> str | None:
        """What identifies the card's baseline in the saved state: another one means another model."""
        b = self.card
        return None if b is None else f"{b.source}@{b.created}"
