"""Per-label drift of /classify: which labels' share of the answers or confidence moved, ranked.

A single `classify_confidence` stream says the confidences changed, not where: a new intent that the kNN vote maps
onto an old label shows as that label's share rising and its confidence falling. The reference is the first
`size` classifications after a `warmup` (label shares are the collection's, not the model card's); the live side is
the last `window` ones. Per label, the share is tested with Fisher's exact test on the 2×2 counts and the confidence
with the Mann–Whitney U test (scipy.stats); a label's p-value is the smaller one, Bonferroni-doubled, and a label is
`moved` when it is below the drift p-value divided by the number of labels (Bonferroni over labels).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

import numpy as np

NONE_LABEL = "(none)"  # classify answered null: out of scope
OTHER_LABEL = "(other)"  # labels past max_labels share one row, so memory and /metrics stay bounded


class LabelMonitor:
    """Records (label, confidence) in O(1) under a lock; `ranking()` does the tests (cached per record count)."""

    def __init__(self, window: int, warmup: int, size: int, max_labels: int, min_count: int, alpha: float) -> None:
        self.warmup, self.size, self.max_labels, self.min_count, self.alpha = warmup, size, max_labels, min_count, alpha
        self.lock = threading.Lock()
        self.seen = 0
        self.reference: list[tuple[str, float]] = []
        self.live: deque[tuple[str, float]] = deque(maxlen=window)
        self.labels: set[str] = set()
        self._cache: tuple[int, dict[str, Any]] | None = None

    def record(self, label: str | None, confidence: float) -> None:
        if not math.isfinite(confidence):
            return
        name = NONE_LABEL if label is None else str(label)
        with self.lock:
            if name not in self.labels and name != NONE_LABEL:
                if len(self.labels - {OTHER_LABEL}) >= self.max_labels:
                    name = OTHER_LABEL
                self.labels.add(name)
            self.seen += 1
            if self.seen <= self.warmup:
                return
            if len(self.reference) < self.size:
                self.reference.append((name, float(confidence)))
            else:
                self.live.append((name, float(confidence)))

    def ranking(self) -> dict[str, Any]:
        """Reference and live counts, and every label with its shares, mean confidences, p-values, ranked."""
        with self.lock:
            if self._cache is not None and self._cache[0] == self.seen:
                return self._cache[1]
            ref, live, seen = list(self.reference), list(self.live), self.seen
        out: dict[str, Any] = {
            "reference": {"n": len(ref), "source": f"first {self.size} classifications after {self.warmup}"},
            "n_live": len(live),
            "labels": [],
        }
        if len(ref) >= self.size and len(live) >= self.min_count:
            out["labels"] = self._rank(ref, live)
        with self.lock:
            self._cache = (seen, out)
        return out

    def _rank(self, ref: list[tuple[str, float]], live: list[tuple[str, float]]) -> list[dict[str, Any]]:
        from scipy.stats import fisher_exact, mannwhitneyu  # late: scipy.stats costs each start 1-2 s

        names = sorted({n for n, _ in ref} | {n for n, _ in live})
        limit = self.alpha / max(len(names), 1)
        rows: list[dict[str, Any]] = []
        for name in names:
            r = np.array([c for n, c in ref if n == name])
            li = np.array([c for n, c in live if n == name])
            share_p = float(fisher_exact([[li.size, len(live) - li.size], [r.size, len(ref) - r.size]]).pvalue)
            conf_p = None
            if min(r.size, li.size) >= self.min_count:
                conf_p = float(mannwhitneyu(li, r).pvalue)
            p = min(1.0, 2.0 * min(share_p, conf_p)) if conf_p is not None else share_p
            rows.append(
                {
                    "label": name,
                    "share_reference": round(r.size / len(ref), 6),
                    "share_live": round(li.size / len(live), 6),
                    "confidence_reference": round(float(r.mean()), 6) if r.size else None,
                    "confidence_live": round(float(li.mean()), 6) if li.size else None,
                    "share_pvalue": round(share_p, 8),
                    "confidence_pvalue": None if conf_p is None else round(conf_p, 8),
                    "pvalue": round(p, 8),
                    "moved": p < limit,
                }
            )
        rows.sort(key=lambda row: (row["pvalue"], -abs(row["share_live"] - row["share_reference"])))
        return rows

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"seen": self.seen, "reference": self.reference, "live": list(self.live)}

    def restore(self, state: dict[str, Any]) -> None:
        with self.lock:
            self.seen = int(state.get("seen", 0))
            self.reference = [(str(n), float(c)) for n, c in state.get("reference", [])][: self.size]
            self.live.extend((str(n), float(c)) for n, c in state.get("live", []))
            self.labels = ({n for n, _ in self.reference} | {n for n, _ in self.live}) - {NONE_LABEL}
