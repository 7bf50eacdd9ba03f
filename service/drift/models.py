"""The documents the drift monitor answers with: GET /drift, one stream's report, an export and the webhook's
status change. `as_json` gives the wire form: a field that does not apply to a stream (the per-label ranking, the
detail of histogram and history) is left out, not written as null."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

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
    classify: dict[str, Any]
    embeddings: dict[str, Any] | None
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
