"""A stream's report, its webhook event and its Prometheus buckets, built from its latest evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.drift.advice import advice
from service.drift.baseline import iso
from service.drift.checks import StreamChecks
from service.drift.classify import ClassifyMonitor
from service.drift.config import LEVELS
from service.drift.judge import Evaluation
from service.drift.models import (
    CheckCost,
    DomainReport,
    DriftReport,
    StatusChange,
    StreamExport,
    StreamReport,
)
from service.drift.recording import Recorder
from service.drift.registry import TrackedStream
from service.drift.stats import shared_histogram
from service.drift.status import PENDING
from service.drift.stream import SCORE_EDGES
from service.drift.streams import LABEL_STREAM, TOKEN_STREAMS
from service.drift.texts import TextKeeper
from service.errors import NotFound


class Reports:
    """Reads the streams' evaluations (computing one where no check has yet) under the check lock, so a report
    never shows a status from before a check beside statistics or counts from after it."""

    def __init__(
        self, checks: StreamChecks, card: dict[str, Any], recorder: Recorder, classify: ClassifyMonitor, cost: CheckCost
    ) -> None:
        self.checks, self.registry, self.card, self.labels = checks, checks.registry, card, recorder.labels
        self.recorder, self.classify, self.cost = recorder, classify, cost

    def document(self, detail: bool) -> DriftReport:
        """The GET /drift document: every stream's status, statistics, thresholds, summaries and advice."""
        streams = self.streams(detail)
        tokens, embeddings, c = self.recorder.tokens, self.recorder.embeddings, self.checks.config
        return DriftReport(
            generated_at=iso(self.checks.clock()),
            model=self.card.get("name"),
            config=c.public(),
            dropped_scores=self.recorder.dropped,
            dropped_token_requests=tokens.dropped if tokens is not None else 0,
            checking=self.cost.report(c.cpu_budget),
            classify=self.classify.report(),
            embeddings=embeddings.report() if embeddings is not None else None,
            streams=streams,
        )

    def streams(self, detail: bool) -> dict[str, StreamReport]:
        with self.checks.lock:
            return {name: self.stream(name, self._tracked(name), detail) for name in self.registry.names()}

    def one(self, name: str) -> StreamReport:
        """NotFound for an unknown stream, such as one a concurrent delete just removed."""
        with self.checks.lock:
            return self.stream(name, self._tracked(name), detail=True)

    def export(self, name: str, keeper: TextKeeper | None) -> StreamExport:
        """The live window behind a stream's verdict: its report, its scores, and what `keeper` holds for it (the
        texts of the token streams, the stream's /similarity pairs as Object2Vec records); else empty lists."""
        with self.checks.lock:
            tracked = self._tracked(name)
            report, scores = self.stream(name, tracked, detail=False), tracked.stream.window().tolist()
        texts = keeper.recent() if keeper is not None and name in TOKEN_STREAMS else []
        pairs = keeper.recent_pairs(name) if keeper is not None else []
        return StreamExport(stream=name, verdict=report, scores=scores, texts=texts, pairs=pairs)

    def _tracked(self, name: str) -> TrackedStream:
        tracked = self.registry.get(name)
        if tracked is None:
            raise NotFound.stream(name)
        return tracked

    def stream(self, name: str, tracked: TrackedStream, detail: bool) -> StreamReport:
        ev = self.checks.evaluate(name, tracked)
        baseline = self.checks.baseline(name, tracked)
        described = baseline.described if baseline is not None else None
        status, live, domain = tracked.tracker.status, ev.live_summary, self.domain(ev)
        live_mean = live.get("mean")
        report = StreamReport(
            status=status,
            raw_status=LEVELS[ev.verdict.enter] if ev.verdict is not None else PENDING,
            changed_at=iso(tracked.changed_at),
            n_live=int(ev.live.size),
            n_baseline=int(baseline.scores.size) if baseline is not None else 0,
            n_settled=tracked.settled.n,
            n_total=tracked.stream.total,
            min_samples=self.checks.config.min_samples,
            statistics=ev.verdict.statistics if ev.verdict is not None else {},
            baseline=described,
            live=live,
            domain=domain,
            advice=advice(
                name,
                status,
                described,
                live_mean if isinstance(live_mean, float) else None,
                self.card,
                domain.status if domain is not None else None,
            ),
        )
        if name == LABEL_STREAM:
            report.labels = self.labels.ranking()
        if detail:
            report.histogram = shared_histogram(baseline.scores, ev.live) if baseline is not None else None
            report.history = [{**b, "start": iso(b["start"])} for b in tracked.stream.buckets()]
        return report

    def domain(self, ev: Evaluation) -> DomainReport | None:
        """The window against the model card's validation scores, where the stream's baseline is another."""
        card = self.checks.baselines.card
        if ev.domain is None or card is None:
            return None
        return DomainReport(status=LEVELS[ev.domain.enter], baseline=card.described, statistics=ev.domain.statistics)

    def status_change(self, name: str, tracked: TrackedStream, old: str, new: str) -> StatusChange:
        r = self.stream(name, tracked, detail=False)
        at = self.checks.clock()
        return StatusChange(
            event="drift_status_change",
            stream=name,
            **{"from": old},
            to=new,
            at=iso(at),
            n_live=r.n_live,
            n_baseline=r.n_baseline,
            live_mean=r.live.get("mean"),
            baseline_mean=(r.baseline or {}).get("mean"),
            statistics={key: entry.value for key, entry in r.statistics.items()},
            advice=r.advice,
        )

    def score_buckets(self) -> dict[str, dict[str, Any]]:
        """Per stream, what Prometheus adds up across replicas: `counts` of the scores this process recorded per
        SCORE_EDGES bucket (+Inf last) and the baseline's CDF at those edges (None without one)."""
        out = {}
        streams = dict(self.registry.items())  # a stream deleted meanwhile is still answered, not a KeyError
        for name in self.registry.names():
            tracked = streams.get(name)
            if tracked is None:
                continue
            baseline = self.checks.baseline(name, tracked)
            cdf = None
            if baseline is not None:
                cdf = np.searchsorted(baseline.scores, SCORE_EDGES, side="right") / baseline.scores.size
            out[name] = {"counts": tracked.stream.score_counts(), "baseline_cdf": cdf}
        return out
