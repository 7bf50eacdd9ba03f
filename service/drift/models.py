"""The documents the drift monitor answers with: GET /drift (its score streams, classify streams and embedding
families), one stream's report, an export and the webhook's status change. `as_json` gives the wire form: a field
that does not apply to a stream (the per-label ranking, the detail of histogram and history, a verdict not yet
reached) is left out, not written as null."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

Summary = dict[str, Any]
"""A distribution's `stats.summary` (n, mean, std, min, max, quantiles); a baseline's also says its source."""


class Document(BaseModel):
    def as_json(self) -> dict[str, Any]:
        """The fields that were set, by their wire names."""
        return self.model_dump(exclude_unset=True, by_alias=True)


class Statistic(Document):
    """A statistic's value and, where a limit judged it, the thresholds and the level it crossed (None: neither)."""

    value: float
    warning: float | None = None
    drift: float | None = None
    crossed: str | None = None


class DomainReport(Document):
    """The live window judged against the model card's validation scores, beside the stream's own baseline."""

    status: str
    baseline: Summary
    statistics: dict[str, Statistic]


class StreamReport(Document):
    """One stream: its status (after the hysteresis) and the latest raw level, counts, statistics, summaries and
    advice; `labels` only for the label stream, `histogram` and `history` only in the detailed report."""

    status: str
    raw_status: str
    changed_at: str | None
    n_live: int
    n_baseline: int
    n_settled: int
    n_total: int
    min_samples: int
    statistics: dict[str, Statistic]
    baseline: Summary | None
    live: Summary
    domain: DomainReport | None
    advice: str
    labels: dict[str, Any] | None = None
    histogram: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None


class ClassifyReference(Document):
    """A classify stream's reference: its collection's leave-one-out answers."""

    n: int
    accuracy: float
    kind: str


class LabelShare(Document):
    label: Any  # the collection's canonical label (None: out of scope)
    reference_share: float
    live_share: float


class LabelMix(Document):
    """The live label mix against the reference's: `changed` or `same`, and the labels that moved most."""

    status: str
    total_variation: float
    pvalue: float
    labels: list[LabelShare]


class ClassifyResult(Document):
    """A classify stream's latest verdict: CBPE's estimated accuracy against what the label mix explains."""

    estimated_accuracy: float
    reference_accuracy: float
    expected_accuracy: float
    fall: float
    fall_z: float
    ordering: float
    thresholds: dict[str, float]
    raw_status: str
    label_mix: LabelMix


class ClassifyReport(Document):
    """One classify stream (collection/label key). `reference` is `insufficient` (with a `reason`) where the
    collection cannot be one, None while it is being computed. The latest `result` is written flat, its fields
    beside the counts, as GET /drift has always shown them."""

    status: str
    n_live: int
    n_total: int
    reference: ClassifyReference | str | None
    result: ClassifyResult | None = None
    reason: str | None = None
    advice: str

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in handler(self).items():
            out.update(value if key == "result" else {key: value})
        return out


class EmbeddingReferenceReport(Document):
    """What an embedding is tested against (`EmbeddingReference.described()`): the card's sample (`card`, every
    family's domain reference), a team's texts (`uploaded`) or the family's own first window (`learned`); `seen`
    counts the vectors ever offered to it (a learned one grows by reservoir sampling)."""

    n: int
    source: str
    kind: str
    seen: int
    bandwidth: float
    mix_floor: float


class EmbeddingDomain(Document):
    """A family's window tested against the card's sample: shown as `in_domain`, `borderline` or `other_domain`,
    never judged."""

    model_config = ConfigDict(extra="allow")

    mmd2: float
    pvalue: float
    raw_status: str | None = None
    status: str
    reference: str
    n_live: int | None = None


class FamilyReport(Document):
    """One route family's MMD test against its own reference; `reference` is null while the family learns it
    (`learning` says how far). The test's fields (`mmd2`, `pvalue`, `raw_status`) once it ran, and `domain` once
    the family was tested against the card's sample. Fields the test adds later pass through (`extra`): the test
    lives in embeddings.py, and its report follows it."""

    model_config = ConfigDict(extra="allow")

    status: str
    reference: EmbeddingReferenceReport | None
    n_live: int
    n_total: int
    mmd2: float | None = None
    pvalue: float | None = None
    raw_status: str | None = None
    learning: str | None = None
    domain: EmbeddingDomain | None = None


class EmbeddingReport(Document):
    """The embedding drift section of GET /drift: the domain reference (the card's sample), the test and its
    thresholds, and each route family."""

    reference: EmbeddingReferenceReport
    test: str
    thresholds: dict[str, float]
    families: dict[str, FamilyReport]


class CheckingReport(Document):
    rounds: int
    busy_s: float
    cpu_s: float
    paused_s: float
    budget: float


class DriftReport(Document):
    """The GET /drift document."""

    generated_at: str | None
    model: Any
    config: dict[str, Any]
    dropped_scores: int
    dropped_token_requests: int
    checking: CheckingReport
    classify: dict[str, ClassifyReport]
    embeddings: EmbeddingReport | None
    streams: dict[str, StreamReport]


class StreamExport(Document):
    """The live window behind a stream's verdict, with the texts and pairs kept for it (O2V_DRIFT_KEEP_TEXTS)."""

    stream: str
    verdict: StreamReport
    scores: list[float]
    texts: list[dict[str, Any]]
    pairs: list[dict[str, Any]]


class StatusChange(Document):
    """The webhook's event (and log line) when a stream's status changes."""

    event: str
    stream: str
    from_: str = Field(alias="from")
    to: str
    at: str | None
    n_live: int
    n_baseline: int
    live_mean: float | None
    baseline_mean: float | None
    statistics: dict[str, float]
    advice: str


@dataclass
class CheckCost:
    """What the checking thread spent: rounds, seconds working (checks, token rates, saves) and seconds paused to
    keep within `cpu_budget`; GET /drift shows it, bench.http_overhead reads it."""

    rounds: int = 0
    busy_s: float = 0.0
    cpu_s: float = 0.0
    paused_s: float = 0.0

    def report(self, budget: float) -> CheckingReport:
        return CheckingReport(
            rounds=self.rounds,
            busy_s=round(self.busy_s, 3),
            cpu_s=round(self.cpu_s, 3),
            paused_s=round(self.paused_s, 3),
            budget=budget,
        )
