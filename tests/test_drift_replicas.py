"""Drift across gateway replicas: each replica exports its live scores as fixed-bucket counts that Prometheus adds up,
and the L∞ distance read from the summed buckets is the fleet's, short of the exact one by at most a bucket's mass."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from service.drift import DriftMonitor
from service.drift.metrics import LE, DriftCollector
from tests.drift_fixtures import monitor, scores

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def exported(m: DriftMonitor) -> Samples:
    """The score histogram and baseline CDF samples a scrape of this replica returns."""
    registry = CollectorRegistry()
    registry.register(DriftCollector(m))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(("o2v_drift_score", "o2v_drift_baseline_cdf"))
    }


def replicas(first: list[float], second: list[float]) -> tuple[Samples, Samples, DriftMonitor]:
    """Replica a gets `first`, replica b `second`, and one monitor both, on the streams similarity and search_top1."""
    a, b, both = monitor(), monitor(), monitor()
    for stream, to_a, to_b in (("similarity", first, second), ("search_top1", second, first)):
        for m, values in ((a, to_a), (b, to_b), (both, to_a), (both, to_b)):
            m.record_many(stream, values)
    return exported(a), exported(b), both


def cumulative(samples: Samples, stream: str) -> np.ndarray:
    return np.array([samples[("o2v_drift_score_bucket", (("le", le), ("stream", stream)))] for le in LE])


def test_two_replicas_bucket_counts_add_up_to_one_monitor_fed_both() -> None:
    first = scores(150, mean=0.5, seed=1)
    second = [*scores(120, mean=0.6, std=0.3, seed=2), 1.5, -2.0, 1.0, -0.95]
    a, b, both = replicas(first, second)
    together = exported(both)
    histogram = [key for key in together if key[0] == "o2v_drift_score_bucket"]
    assert len(histogram) == 3 * len(LE)  # similarity, search_top1 and the (empty) classify_confidence
    for key in histogram:
        assert a[key] + b[key] == together[key], key
    assert cumulative(together, "similarity")[-1] == len(first) + len(second)
    assert np.all(np.diff(cumulative(together, "similarity")) >= 0)
    cdf = [key for key in together if key[0] == "o2v_drift_baseline_cdf" and ("stream", "similarity") in key[1]]
    assert len(cdf) == len(LE) and all(a[key] == b[key] == together[key] for key in cdf), "one model card, one baseline"


def test_linf_from_summed_buckets_is_within_a_bucket_of_the_exact_statistic() -> None:
    first, second = scores(90, mean=0.55, seed=3), scores(90, mean=0.6, seed=4)  # 180 ≤ window: it holds them all
    a, b, both = replicas(first, second)
    live = cumulative(a, "similarity") + cumulative(b, "similarity")
    live = live / live[-1]
    baseline = np.array([a[("o2v_drift_baseline_cdf", (("le", le), ("stream", "similarity")))] for le in LE])
    bucketed = float(np.max(np.abs(live - baseline)))
    exact = both.stream_report("similarity")["statistics"]["linf"]["value"]
    widest = float(max(np.diff(live, prepend=0).max(), np.diff(baseline, prepend=0).max()))
    assert bucketed <= exact + 1e-6
    assert exact - bucketed <= widest
    assert bucketed > 0.1, "this shift is drift, and the summed buckets show it"
