"""What an embedding family's windows are tested against, and which references may raise `drift`.

A reference is `card` (the model dir's validation sample), `uploaded` (a team's baseline texts) or `learned` (the
family's own first window of traffic). Only the team's references judge a family's status: the card's sample is
another domain for most teams (500 STS-B dev sentences), and a team serving reviews or intents would see its own,
unchanged traffic called drift forever. That is how NannyML, Evidently and alibi-detect treat the choice: drift is
against a reference the user chose (NannyML's reference period, Evidently's reference data, alibi-detect's `x_ref`);
here a family without an uploaded one takes its first traffic, as NannyML takes a reference period. The card stays the
`domain` reference: how far the family's traffic is from what the model was validated on, shown beside its status.

A learned reference grows with the family's traffic judged normal (alibi-detect's `update_x_ref` reservoir): a team's
traffic changes topic (reviews of phones, then restaurants, then films), and a reference of its first 500 texts does
not know the later topics. Only embeddings that left the window with no check since they arrived reaching `warning`
join it (`EmbeddingMonitor`), so the embeddings of a change never become the reference that would hide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from service.drift.mmd import SEED, median_distance, mix_floor, unit_rows

CARD, UPLOADED, LEARNED = "card", "uploaded", "learned"
CARD_CACHE = 8
"""Card samples whose reference a process keeps: every app (and every monitor rebuilt for a served model) serves one
of a few models, and the mix floor's SVD is the slowest step of building a drift monitor."""


@dataclass(frozen=True)
class EmbeddingReference:
    """Unit rows (in arrival order where they have one), the kernel's bandwidth, where they came from, the MMD² of a
    window of one of its own topics or sections (`mix_floor`: a change of mix, not drift), and how many vectors were
    offered to it (its reservoir's count)."""

    vectors: np.ndarray
    bandwidth: float
    source: str
    kind: str
    floor: float
    seen: int

    @classmethod
    def of(cls, vectors: np.ndarray, size: int, source: str, kind: str, seen: int = 0) -> EmbeddingReference:
        """A seeded subsample of at most `size` rows, kept in their order. The card's sample has no order; the
        others' contiguous parts as they arrived count in the floor too."""
        rng = np.random.default_rng(SEED)
        keep = np.sort(rng.choice(vectors.shape[0], min(size, vectors.shape[0]), replace=False))
        units = unit_rows(vectors[keep])
        bandwidth = median_distance(units)
        floor = mix_floor(units, bandwidth, ordered=kind != CARD)
        return cls(units, bandwidth, source, kind, floor, max(seen, vectors.shape[0]))

    @classmethod
    def card(cls, vectors: np.ndarray, size: int, source: str) -> EmbeddingReference:
        """`of` the model card's sample, computed once per content (it depends on nothing else); the rows are
        read-only, since monitors share them."""
        v = np.ascontiguousarray(vectors)
        return _card_reference(v.tobytes(), v.dtype.str, v.shape, size, source)

    @classmethod
    def restored(cls, saved: dict[str, Any], vectors: np.ndarray, size: int) -> EmbeddingReference:
        """A reference from the drift state (its `described()`, its rows unpacked): bandwidth and floor as they
        were, so a restart changes no verdict; a state without them (an older one) has them computed again."""
        source, kind, seen = str(saved.get("source")), str(saved["kind"]), int(saved.get("seen", 0))
        if "bandwidth" not in saved or "mix_floor" not in saved:
            return cls.of(vectors, size, source, kind, seen)
        return cls(vectors, float(saved["bandwidth"]), source, kind, float(saved["mix_floor"]), max(seen, len(vectors)))

    def absorbed(self, rows: np.ndarray) -> EmbeddingReference:
        """This reference with `rows` offered to it by reservoir sampling (Vitter's algorithm R): every vector ever
        offered is in it with the same chance. Replaced rows leave, the new ones join at the end, so its order stays
        the order of arrival; bandwidth and floor follow the new rows."""
        size, n = self.vectors.shape[0], rows.shape[0]
        rng = np.random.default_rng([SEED, self.seen])
        slots = rng.integers(0, self.seen + np.arange(1, n + 1))  # row i replaces slot j < size, if any
        winner: dict[int, int] = {}
        for i, slot in enumerate(slots):
            if slot < size:
                winner[int(slot)] = i  # a later row taking the same slot replaces the earlier one
        if not winner:
            return EmbeddingReference(self.vectors, self.bandwidth, self.source, self.kind, self.floor, self.seen + n)
        kept = np.delete(self.vectors, list(winner), axis=0)
        joined = np.concatenate([kept, unit_rows(rows[sorted(winner.values())])])
        return EmbeddingReference.of(joined, size, self.source, self.kind, self.seen + n)

    def described(self) -> dict[str, Any]:
        return {
            "n": int(self.vectors.shape[0]),
            "source": self.source,
            "kind": self.kind,
            "seen": self.seen,
            "bandwidth": self.bandwidth,
            "mix_floor": round(self.floor, 6),
        }


@lru_cache(maxsize=CARD_CACHE)
def _card_reference(raw: bytes, dtype: str, shape: tuple[int, ...], size: int, source: str) -> EmbeddingReference:
    reference = EmbeddingReference.of(np.frombuffer(raw, dtype=dtype).reshape(shape), size, source, CARD)
    reference.vectors.flags.writeable = False
    return reference
