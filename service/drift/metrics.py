"""Prometheus metrics per stream and test, collected from the monitor at scrape time.

Besides the replica's own verdict (status, statistics), `o2v_drift_score` is a histogram of the live scores over
fixed buckets and `o2v_drift_baseline_cdf` the baseline's CDF at the same edges: Prometheus sums the buckets of all
replicas, so the fleet's distribution, and its L∞ distance from the baseline, can be read there (README).

Classify streams (`o2v_drift_classify_*`) are labelled by their stream name, collection/label key, never by the
labels they answer: the classify monitor keeps at most O2V_DRIFT_MAX_STREAMS of them, the bound the score streams'
series have too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from service.drift.config import LEVELS
from service.drift.monitor import DriftMonitor
from service.drift.stream import SCORE_EDGES

STATUS_VALUE = {"pending": -1, **{name: i for i, name in enumerate(LEVELS)}}
LE = [*(floatToGoString(edge) for edge in SCORE_EDGES), "+Inf"]
"""`le` label values, written as prometheus_client writes a histogram's, so the two series join on them."""
_G = GaugeMetricFamily
Families = tuple[_G, _G, _G, _G, _G, HistogramMetricFamily, _G, _G, _G, _G, _G, _G, _G]
"""What DriftCollector._families returns, in its order: every family a gauge but `o2v_drift_score`."""


class DriftCollector(Collector):
    """Nothing is updated on the request path: each scrape reads the monitor's current statistics, under the
    monitor's check lock (`DriftMonitor.metrics`), so a scrape mid-check shows the check's outcome, not the status
    before it."""

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor

    def describe(self) -> Iterator[Metric]:
        return iter((*self._families(), *self._classify({})))

    def collect(self) -> Iterator[Metric]:
        status, live, base, stat, limit, scores, cdf, shift, domain, label_p, label_share, emb, emb_p = families = (
            self._families()
        )
        doc, buckets = self.monitor.metrics()
        for family, e in ((doc.get("embeddings") or {}).get("families") or {}).items():
            emb.add_metric([family], STATUS_VALUE[e["status"]])
            if "pvalue" in e:
                emb_p.add_metric([family], e["pvalue"])
        for name, s in doc["streams"].items():
            status.add_metric([name], STATUS_VALUE[s["status"]])
            live.add_metric([name], s["n_live"])
            base.add_metric([name], s["n_baseline"])
            for test, entry in s["statistics"].items():
                stat.add_metric([name, test], entry["value"])
            if "shift_z" in s["statistics"]:
                for lvl in ("warning", "drift"):
                    shift.add_metric([name, lvl], s["statistics"]["shift_z"][lvl])
            if s.get("domain"):
                domain.add_metric([name], STATUS_VALUE[s["domain"]["status"]])
            # labels are metadata values (an email, an id): never a metric label. Each row is named by its rank,
            # most moved first, as GET /drift lists them (keyed); at most MAX_LABELS + 2 rows
            for rank, row in enumerate((s.get("labels") or {}).get("labels", [])):
                label_p.add_metric([str(rank)], row["pvalue"])
                label_share.add_metric([str(rank), "reference"], row["share_reference"])
                label_share.add_metric([str(rank), "live"], row["share_live"])
        for test, lim in self.monitor.config.limits.items():
            for lvl, value in lim.as_dict().items():
                limit.add_metric([test, lvl], value)
        for name, b in buckets.items():
            # no _sum (so no _count): OpenMetrics has none for buckets below zero; the +Inf bucket is the count
            scores.add_metric([name], list(zip(LE, np.cumsum(b["counts"]).tolist(), strict=True)), None)
            if b["baseline_cdf"] is not None:
                for le, value in zip(LE, [*b["baseline_cdf"].tolist(), 1.0], strict=True):
                    cdf.add_metric([name, le], value)
        return iter((*families, *self._classify(doc["classify"])))

    @staticmethod
    def _classify(streams: dict[str, Any]) -> tuple[_G, ...]:
        """Each classify stream's status and its accuracies: CBPE's estimate over the live window, the collection's
        leave-one-out accuracy, and what that gives the live label mix (the estimate is judged against it)."""
        labels = ["stream"]
        status = GaugeMetricFamily(
            "o2v_drift_classify_status", "classify stream: -1 pending, 0 ok, 1 warning, 2 drift", labels=labels
        )
        accuracies = {
            "estimated_accuracy": GaugeMetricFamily(
                "o2v_drift_classify_estimated_accuracy", "CBPE estimate over the live window", labels=labels
            ),
            "reference_accuracy": GaugeMetricFamily(
                "o2v_drift_classify_reference_accuracy", "the collection's leave-one-out accuracy", labels=labels
            ),
            "expected_accuracy": GaugeMetricFamily(
                "o2v_drift_classify_expected_accuracy", "reference accuracy for the live label mix", labels=labels
            ),
        }
        for name, s in streams.items():
            status.add_metric([name], STATUS_VALUE[s["status"]])
            for key, family in accuracies.items():
                if key in s:
                    family.add_metric([name], s[key])
        return (status, *accuracies.values())

    @staticmethod
    def _families() -> Families:
        return (
            GaugeMetricFamily("o2v_drift_status", "-1 pending, 0 ok, 1 warning, 2 drift", labels=["stream"]),
            GaugeMetricFamily("o2v_drift_live_samples", "scores in the live window", labels=["stream"]),
            GaugeMetricFamily("o2v_drift_baseline_samples", "scores in the baseline", labels=["stream"]),
            GaugeMetricFamily("o2v_drift_statistic", "live vs baseline, per test", labels=["stream", "test"]),
            GaugeMetricFamily("o2v_drift_threshold", "threshold per test and level", labels=["test", "level"]),
            HistogramMetricFamily("o2v_drift_score", "live scores since this process started", labels=["stream"]),
            GaugeMetricFamily("o2v_drift_baseline_cdf", "baseline share <= le", labels=["stream", "le"]),
            GaugeMetricFamily("o2v_drift_shift_threshold", "shift test |z| limit", labels=["stream", "level"]),
            GaugeMetricFamily(
                "o2v_drift_domain_status", "raw level vs the model card (learned baselines)", labels=["stream"]
            ),
            GaugeMetricFamily(
                "o2v_drift_label_pvalue", "classify label moved, by rank (0: most): smaller is more", labels=["rank"]
            ),
            GaugeMetricFamily(
                "o2v_drift_label_share", "classify answers with the label of this rank", labels=["rank", "window"]
            ),
            GaugeMetricFamily("o2v_drift_embedding_status", "MMD test per route family, as status", labels=["family"]),
            GaugeMetricFamily("o2v_drift_embedding_pvalue", "MMD permutation p-value", labels=["family"]),
        )
