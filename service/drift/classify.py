"""Classify streams judged by their collection: leave-one-out answers as the reference, CBPE's estimated accuracy.

A chatbot team asks "is the classifier still right as often as it was", not "did the confidence distribution move".
Every classify answer of a collection (per label key) lands in that scope's window, never mixed with another
collection's. The scope's reference is the collection itself, ready before its first request is judged: each of up
to `reference_max` of its items is classified against all the others (the route's kNN vote, its k and thresholds),
which gives the confidences, the label mix and whether each answer was right.

`estimated_accuracy` is NannyML's CBPE (confidence-based performance estimation): live confidences mapped to
P(right | confidence), calibrated on the leave-one-out answers, averaged over the window. The calibration is
histogram binning over equal-count bins of the reference's confidences (Zadrozny & Elkan, 2001), not isotonic
regression on the answers themselves: a kNN support has plateaus and ties, isotonic regression (pool-adjacent-
violators) makes its end steps from a handful of answers, while equal-count bins give every step at least
1/`CALIBRATION_BINS` of the reference. The bins' accuracies are made monotone (scipy's pool-adjacent-violators
over the bins, weighted by their counts) and joined linearly between the bins' median confidences, and below the
lowest bin down to P(right) = 0 at support 0 (no neighbour at a positive cosine: the vote is a guess among many labels).
Without that slope every answer below the lowest bin's median counted at that bin's accuracy: traffic the
collection answers worse than anything in it (typing slips) has most of its answers there, and the estimate stayed
6 points above the true accuracy on typo'd intent traffic (bench.drift_streams).

The verdict compares the estimate with what the reference says the live label mix should get, Σ share(label) ·
accuracy(label) over the answers' labels: grouped traffic (a run of one intent) moves the mix and the expected
accuracy together and is reported as a label-mix change (which labels, by how much), while a fall of the estimate
below what the mix explains is a fall of accuracy: "estimated accuracy fell from 0.89 to 0.80". The fall counts
when it passes its threshold and `SIGMAS` standard errors at the window's effective size (`ordering.py`), taken
from each answer's P(right) less its label's reference accuracy: runs of one intent are not independent answers,
but with the label mix taken out most of their order is gone.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.drift.config import LEVELS, Limit
from service.drift.models import ClassifyReference, ClassifyReport, ClassifyResult, LabelMix, LabelShare
from service.drift.ordering import inflation, intrablock_correlation
from service.drift.status import PENDING, StatusTracker

log = logging.getLogger("service.drift")

CALIBRATION_BINS = 10
MIN_PER_LABEL = 2  # a label needs this many items for its items to have a neighbour of their own label
MIN_REFERENCE = 20  # leave-one-out answers below which the reference says nothing
SIGMAS = 3.0
MIX_ALPHA = 0.001  # chi-square p-value below which the label mix is `changed`
MIX_DISTANCE = 0.1  # ... and total variation distance above which
SHOWN_LABELS = 5
SEED = 20261130
INSUFFICIENT = "insufficient"

# (collection, label_key) → its items' leave-one-out answers: (label or None, confidence, right) per item
Answers = list[tuple[Hashable | None, float, bool]]
ReferenceSource = Callable[[], Answers | str]  # a string: why the collection cannot be a reference


@dataclass(frozen=True)
class Reference:
    """The leave-one-out answers of a collection's items, their calibration, label mix and per-label accuracy."""

    n: int
    accuracy: float
    centres: np.ndarray  # the median confidence of each equal-count bin, with 0 first
    calibrated: np.ndarray  # P(right) at each centre (monotone), with 0 first
    edges: np.ndarray  # interior edges of the bins
    steps: np.ndarray  # each bin's own accuracy: what the verdict's fall and its standard error are taken from
    shares: dict[Hashable | None, float]
    label_accuracy: dict[Hashable | None, float]

    @classmethod
    def of(cls, answers: Answers) -> Reference:
        from scipy.optimize import isotonic_regression  # late: scipy.optimize costs each start about 0.5 s

        conf = np.array([a[1] for a in answers], dtype=np.float64)
        right = np.array([a[2] for a in answers], dtype=np.float64)
        bins = max(1, min(CALIBRATION_BINS, conf.size // MIN_REFERENCE))
        edges = np.unique(np.quantile(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
        which = np.searchsorted(edges, conf, side="left")
        filled = [b for b in range(edges.size + 1) if (which == b).any()]
        centres = np.array([0.0] + [float(np.median(conf[which == b])) for b in filled])
        accuracy = [float(right[which == b].mean()) for b in filled]
        weights = [float((which == b).sum()) for b in filled]
        calibrated = np.concatenate([[0.0], isotonic_regression(accuracy, weights=weights).x])
        labels = [a[0] for a in answers]
        counts = Counter(labels)
        label_accuracy = {
            label: float(np.mean([r for lab, r in zip(labels, right, strict=True) if lab == label])) for label in counts
        }
        shares = {label: c / len(labels) for label, c in counts.items()}
        steps = np.array(
            [right[which == b].mean() if (which == b).any() else right.mean() for b in range(edges.size + 1)]
        )
        return cls(len(answers), float(right.mean()), centres, calibrated, edges, steps, shares, label_accuracy)

    def probability(self, confidences: np.ndarray) -> np.ndarray:
        """P(right | confidence) of each answer: the bins' leave-one-out accuracies joined linearly (flat above the
        top bin's median confidence)."""
        return np.interp(np.asarray(confidences, dtype=np.float64), self.centres, self.calibrated)

    def binned(self, confidences: np.ndarray) -> np.ndarray:
        """P(right | confidence) as each answer's bin's accuracy: coarser at the low end than `probability`, but
        the scale the verdict's 3-sigma gate was calibrated on (ordered clean intent traffic stays ok, typo'd
        traffic is caught within 200 answers); the slope of `probability` widens the residuals' spread and order
        (z of a 20-point fall at 2-2.8), so the estimate is reported from `probability` and judged on the bins."""
        return self.steps[np.searchsorted(self.edges, confidences, side="left")]

    def expected(self, shares: Mapping[Hashable | None, float]) -> float:
        """The accuracy the reference gives this label mix (labels it never answered count at its overall one)."""
        return float(sum(s * self.label_accuracy.get(label, self.accuracy) for label, s in shares.items()))

    def state(self) -> dict[str, Any]:
        """The calibration and the per-label shares and accuracies, not the answers: a few bins and one row per
        label, where the answers are up to `reference_max` rows. Labels are a list, since one may be None."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            **{key: getattr(self, key).tolist() for key in ARRAYS},
            "labels": [[label, share, self.label_accuracy[label]] for label, share in self.shares.items()],
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> Reference:
        arrays = {key: np.array(state[key], dtype=np.float64) for key in ARRAYS}
        labels = [(_label(label), float(share), float(accuracy)) for label, share, accuracy in state["labels"]]
        return cls(
            int(state["n"]),
            float(state["accuracy"]),
            shares={label: share for label, share, _ in labels},
            label_accuracy={label: accuracy for label, _, accuracy in labels},
            **arrays,
        )


ARRAYS = ("centres", "calibrated", "edges", "steps")


def _label(value: Any) -> Hashable | None:
    """A label as the state file gives it back: a JSON scalar (the route's canonical labels are strings)."""
    if value is not None and not isinstance(value, str | int | float):
        raise ValueError(f"a classify label must be a JSON scalar, not {type(value).__name__}")
    return value


@dataclass
class _Scope:
    source: ReferenceSource | None  # None: restored, until the collection's next answer brings one
    window: deque[tuple[Hashable | None, float]]
    tracker: StatusTracker
    reference: Reference | None = None
    insufficient: str | None = None  # why there is no reference
    added: int = 0
    checked: int = 0
    result: ClassifyResult | None = None


class ClassifyMonitor:
    """Per (collection, label key): the last `window` answers, the collection's reference, and a status from the
    estimated accuracy's fall (`limit`: warning and drift thresholds in accuracy points)."""

    def __init__(self, window: int, min_samples: int, max_scopes: int, limit: Limit, confirm: int, clear: int) -> None:
        self.window, self.min_samples, self.max_scopes = window, min_samples, max_scopes
        self.limit, self.confirm, self.clear = limit, confirm, clear
        self.lock = threading.Lock()
        self.scopes: dict[str, _Scope] = {}
        self.dropped = 0

    @staticmethod
    def key(collection: str, label_key: str) -> str:
        return f"{collection}/{label_key}"

    def record(self, collection: str, label_key: str, source: ReferenceSource, label: Any, confidence: float) -> None:
        """One answer of a collection; `source` computes the reference (on the checking thread, the first time)."""
        name = self.key(collection, label_key)
        with self.lock:
            scope = self.scopes.get(name)
            if scope is None:
                if len(self.scopes) >= self.max_scopes:
                    self.dropped += 1
                    return
                scope = _Scope(source, deque(maxlen=self.window), StatusTracker(self.confirm, self.clear))
                self.scopes[name] = scope
            scope.source = scope.source or source
            scope.window.append((label, float(confidence)))
            scope.added += 1

    def forget(self, collection: str) -> None:
        """A deleted collection's scopes go (a new collection of the same name is another reference)."""
        with self.lock:
            for name in [n for n in self.scopes if n.split("/", 1)[0] == collection]:
                del self.scopes[name]

    @staticmethod
    def _due(s: _Scope, every: int) -> bool:
        return s.added - s.checked >= every or (s.reference is None and not s.insufficient and s.source is not None)

    def due(self, every: int) -> bool:
        with self.lock:
            return any(self._due(s, every) for s in self.scopes.values())

    def run_due_checks(self, every: int) -> int:
        with self.lock:
            due = [(n, s) for n, s in self.scopes.items() if self._due(s, every)]
        done = 0
        for name, scope in due:
            if scope.reference is None and scope.insufficient is None and scope.source is not None:
                self._build(name, scope.source, scope)
            if scope.reference is None:
                continue
            with self.lock:
                live = list(scope.window)
                scope.checked = scope.added
            if len(live) < self.min_samples:
                continue
            result, enter, hold = self._judge(scope.reference, live)
            with self.lock:
                scope.tracker.step(enter, hold)
                scope.result = result
            done += 1
        return done

    def _build(self, name: str, source: ReferenceSource, scope: _Scope) -> None:
        try:
            answers = source()
        except Exception as exc:  # a collection deleted or closed meanwhile: no reference, not a crash
            log.warning("drift classify reference of %s failed: %s", name, exc)
            scope.insufficient = f"the collection could not be read: {type(exc).__name__}"
            return
        if isinstance(answers, str):
            scope.insufficient = answers
        elif len(answers) < MIN_REFERENCE:
            scope.insufficient = f"{len(answers)} leave-one-out answers; at least {MIN_REFERENCE} needed"
        else:
            scope.reference = Reference.of(answers)

    def _judge(self, ref: Reference, live: list[tuple[Hashable | None, float]]) -> tuple[ClassifyResult, int, int]:
        labels = [label for label, _ in live]
        conf = np.array([c for _, c in live], dtype=np.float64)
        p = ref.binned(conf)
        estimate = float(ref.probability(conf).mean())
        counts = Counter(labels)
        shares = {label: c / len(labels) for label, c in counts.items()}
        expected = ref.expected(shares)
        # each answer's P(right) less its label's reference accuracy: their mean is estimate − expected, and what
        # is left of runs of one intent once the label mix is accounted for is far less ordered than p itself
        residual = p - np.array([ref.label_accuracy.get(label, ref.accuracy) for label in labels])
        rho = intrablock_correlation(residual)
        se = float(residual.std()) * math.sqrt(inflation(rho, residual.size) / residual.size)
        fall = expected - float(p.mean())
        z = fall / max(se, 1e-9)
        enter = hold = 0
        for lvl in (1, 2):
            if fall >= self.limit.threshold(lvl) and z >= SIGMAS:
                enter = lvl
            if fall >= 0.8 * self.limit.threshold(lvl) and z >= 0.8 * SIGMAS:
                hold = lvl
        result = ClassifyResult(
            estimated_accuracy=round(estimate, 4),
            reference_accuracy=round(ref.accuracy, 4),
            expected_accuracy=round(expected, 4),
            fall=round(fall, 4),
            fall_z=round(z, 3),
            ordering=round(rho, 6),
            thresholds=self.limit.as_dict(),
            raw_status=LEVELS[enter],
            label_mix=label_mix(ref, counts, len(labels)),
        )
        return result, enter, hold

    def state(self) -> dict[str, Any]:
        """Every scope's window, counters, status, latest verdict and reference: after a restart a scope judges on
        as before, without reading its collection again."""
        with self.lock:
            return {
                name: {
                    "window": [[label, confidence] for label, confidence in s.window],
                    "added": s.added,
                    "checked": s.checked,
                    "tracker": s.tracker.state(),
                    "reference": s.reference.state() if s.reference is not None else None,
                    "insufficient": s.insufficient,
                    "result": s.result.as_json() if s.result is not None else None,
                }
                for name, s in self.scopes.items()
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """The scopes `state` saved, at most `max_scopes`; content of the wrong shape raises (a damaged state)."""
        for name, saved in list(state.items())[: self.max_scopes]:
            tracker = saved["tracker"]
            scope = _Scope(
                None,
                deque(((_label(label), float(c)) for label, c in saved["window"]), maxlen=self.window),
                StatusTracker(self.confirm, self.clear, tracker["status"], tracker["recent"]),
                Reference.restore(saved["reference"]) if saved["reference"] is not None else None,
                None if saved["insufficient"] is None else str(saved["insufficient"]),
                int(saved["added"]),
                int(saved["checked"]),
                ClassifyResult.model_validate(saved["result"]) if saved["result"] is not None else None,
            )
            with self.lock:
                self.scopes[str(name)] = scope

    def report(self) -> dict[str, ClassifyReport]:
        with self.lock:
            return {name: self._describe(scope) for name, scope in sorted(self.scopes.items())}

    def _describe(self, scope: _Scope) -> ClassifyReport:
        ref = scope.reference
        status = scope.tracker.status if scope.result is not None else PENDING
        reference: ClassifyReference | str | None = None
        if scope.insufficient:
            reference = INSUFFICIENT
        elif ref is not None:
            reference = ClassifyReference(n=ref.n, accuracy=round(ref.accuracy, 4), kind="collection")
        report = ClassifyReport(
            status=status, n_live=len(scope.window), n_total=scope.added, reference=reference, advice=""
        )
        if scope.result is not None:
            report.result = scope.result
        if scope.insufficient:
            report.reason = scope.insufficient
        report.advice = classify_advice(status, scope.result)
        return report


def label_mix(ref: Reference, counts: Counter[Hashable | None], n: int) -> LabelMix:
    """The live label mix against the reference's: total variation, a chi-square p-value, and the labels that moved
    most (the others and labels the reference never answered are named as they are)."""
    from scipy.stats import chi2_contingency

    labels = sorted(set(ref.shares) | set(counts), key=str)
    live = np.array([counts.get(label, 0) for label in labels], dtype=np.float64)
    expected = np.array([ref.shares.get(label, 0.0) for label in labels])
    distance = 0.5 * float(np.abs(live / n - expected).sum())
    table = np.stack([live, expected * ref.n]) + 0.5  # both rows as counts; 0.5 keeps empty cells defined
    pvalue = float(chi2_contingency(table)[1])
    moved = sorted(labels, key=lambda lab: -abs(counts.get(lab, 0) / n - ref.shares.get(lab, 0.0)))
    return LabelMix(
        status="changed" if pvalue < MIX_ALPHA and distance > MIX_DISTANCE else "same",
        total_variation=round(distance, 4),
        pvalue=pvalue,
        labels=[
            LabelShare(
                label=label,
                reference_share=round(ref.shares.get(label, 0.0), 4),
                live_share=round(counts.get(label, 0) / n, 4),
            )
            for label in moved[:SHOWN_LABELS]
        ],
    )


def classify_advice(status: str, result: ClassifyResult | None) -> str:
    if result is None:
        return "no verdict yet: waiting for the reference or for enough answers"
    est, ref, expected = result.estimated_accuracy, result.reference_accuracy, result.expected_accuracy
    mix = result.label_mix
    parts = []
    if status in ("warning", "drift"):
        parts.append(
            f"Estimated accuracy fell from {expected:.2f} to {est:.2f} (the collection's own leave-one-out accuracy is "
            f"{ref:.2f}): the answers' confidences sit where the collection's own answers are right less often. "
            "Look at recent queries (typos, new phrasings or topics the items do not cover); add items for them, "
            "or retrain the encoder on pairs that include them."
        )
    else:
        parts.append(f"Estimated accuracy {est:.2f}, as the collection predicts for this label mix ({expected:.2f}).")
    if mix.status == "changed":
        top = ", ".join(f"{row.label} {row.reference_share:.0%} → {row.live_share:.0%}" for row in mix.labels[:3])
        parts.append(
            f"The label mix changed (total variation {mix.total_variation:.2f}: {top}); that is what users ask, "
            "not a model failure."
        )
    return " ".join(parts)
