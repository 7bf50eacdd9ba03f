"""What the serving path hands the drift monitor: one Protocol over the monitor's recording methods, and a no-op
sink for an app without drift, so that callers never ask whether drift is on.

Every method runs on the request path: an implementation only queues or copies and never raises. The Protocol's
bodies are the no-op ones `NullDriftSink` inherits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np

Pairs = Sequence[tuple[str, str]]
PairRows = tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]]  # the token rows of each pair's a, and of its b


class DriftSink(Protocol):
    def record_many(self, name: str, scores: Iterable[float]) -> int:
        """One request's scores for stream `name`; returns how many were kept."""
        return 0

    def record_label(self, label: str | None, confidence: float) -> None:
        """One classification's label (None: out of scope) and confidence."""
        return None

    def record_classification(
        self, collection: str, label_key: str, reference: Callable[[], Any], label: Any, confidence: float
    ) -> None:
        """One classify answer of `collection`; `reference` computes its leave-one-out answers when asked."""
        return None

    def forget_collection(self, collection: str) -> None:
        """`collection` was deleted: its classify streams go (a new one of the same name is another reference)."""
        return None

    def record_tokens(self, rows: list[list[int]], lengths: list[int], texts: Sequence[str] | None = None) -> None:
        """One request's token rows (cut), their lengths before the cut, and the texts."""
        return None

    def record_pairs(self, name: str, pairs: Pairs, rows: PairRows, scores: Sequence[float]) -> None:
        """One /similarity request's pairs with their token rows and cosines."""
        return None

    def record_embeddings(self, vectors: np.ndarray) -> None:
        """One request's encoder-0 embeddings."""
        return None


class NullDriftSink(DriftSink):
    """The sink of an app whose drift monitor is off: it keeps nothing."""
