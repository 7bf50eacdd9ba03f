"""Prometheus gauges per stream and test, collected from the monitor's report at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.drift.config import LEVELS
from service.drift.monitor import DriftMonitor

STATUS_VALUE = {"pending": -1, **{name: i for i, name in enumerate(LEVELS)}}


class DriftCollector(Collector):
    """Nothing is updated on the request path: each scrape reads the monitor's current statistics."""

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status, live, base, stat, limit = families = self._families()
        for name, s in self.monitor.report(detail=False)["streams"].items():
            status.add_metric([name], STATUS_VALUE[s["status"]])
            live.add_metric([name], s["n_live"])
            base.add_metric([name], s["n_baseline"])
            for test, entry in s["statistics"].items():
                stat.add_metric([name, test], entry["value"])
        for test, lim in self.monitor.config.limits.items():
            for lvl, value in lim.as_dict().items():
                limit.add_metric([test, lvl], value)
        return iter(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("o2v_drift_status", "-1 pending, 0 ok, 1 warning, 2 drift", labels=["stream"]),
            GaugeMetricFamily("o2v_drift_live_samples", "scores in the live window", labels=["stream"]),
            GaugeMetricFamily("o2v_drift_baseline_samples", "scores in the baseline", labels=["stream"]),
            GaugeMetricFamily("o2v_drift_statistic", "live vs baseline, per test", labels=["stream", "test"]),
            GaugeMetricFamily("o2v_drift_threshold", "threshold per test and level", labels=["test", "level"]),
        )
