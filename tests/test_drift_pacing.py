"""The monitor's cost is bounded in time, not per request: paced checks wait for their interval, the token rates
are sampled once per interval, and the worker rests in proportion to its CPU time (O2V_DRIFT_CPU_BUDGET)."""

from __future__ import annotations

import time

import numpy as np

from service.drift.config import Limit
from service.drift.embeddings import EmbeddingMonitor, unit_rows
from service.drift.worker import DriftWorker
from tests.drift_fixtures import config, monitor, scores


def test_a_paced_check_waits_for_its_interval_and_an_explicit_one_does_not() -> None:
    m = monitor(config=config(window=200, min_samples=50, check_every=10, check_interval_s=60.0))
    m.record_many("similarity", scores(60))
    assert m.run_due_checks(paced=True) == 1  # never checked: its turn
    m.record_many("similarity", scores(20, seed=1))
    assert m.run_due_checks(paced=True) == 0  # due by count, but checked less than 60 s ago
    assert 50.0 < (m.next_check_in() or 0.0) <= 60.0  # the worker sleeps until then
    assert m.run_due_checks() == 1  # GET /drift, tests and benchmarks check at once


def test_an_embedding_family_is_tested_at_most_once_per_interval() -> None:
    rng = np.random.default_rng(0)
    e = EmbeddingMonitor(unit_rows(rng.normal(size=(200, 16))), 200, 50, 20, 20, Limit(0.05, 0.01, True), 2, 3, 60.0)
    e.record(rng.normal(size=(60, 16)))
    assert e.due() and e.run_due_checks(paced=True) == 1
    e.record(rng.normal(size=(40, 16)))
    assert not e.due() and e.run_due_checks(paced=True) == 0
    assert (e.next_check_in() or 0.0) > 50.0
    assert e.run_due_checks() == 1


def test_the_worker_rests_in_proportion_to_its_cpu_time() -> None:
    m = monitor(config=config(window=200, min_samples=50, check_every=10, check_interval_s=0.0, cpu_budget=0.5))
    worker = DriftWorker(m)
    worker.start()
    try:
        for i in range(20):
            m.record_many("similarity", scores(10, seed=i))
            time.sleep(0.01)
        deadline = time.monotonic() + 5
        while m.cost.rounds < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    report = m.report(detail=False)["checking"]
    assert report["rounds"] >= 3 and report["budget"] == 0.5
    assert m.cost.paused_s > 0 and abs(m.cost.paused_s - m.cost.cpu_s) < 1e-6  # budget ½: rest = work
