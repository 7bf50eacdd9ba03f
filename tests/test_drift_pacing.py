"""The monitor's cost is bounded in time, not per request: paced checks wait for their interval, the token rates
are sampled once per interval, and the worker's CPU time is charged to a token bucket (CPU_BUDGET, CPU_BURST_S):
it rests only when the bucket is in debt, so a check that comes due at low traffic never waits for the budget."""

from __future__ import annotations

import time

import numpy as np
import pytest

from service.drift.budget import CpuBudget
from service.drift.config import Limit
from service.drift.embeddings import EmbeddingMonitor, unit_rows
from service.drift.worker import DriftWorker
from tests.drift_fixtures import config, monitor, pay_first_checks, scores


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
    assert e.record(rng.normal(size=(60, 16)))  # due by count: the worker is woken
    assert e.due() and e.run_due_checks(paced=True) == 1
    assert e.record(rng.normal(size=(40, 16)))  # due by count again: woken, to wait out the interval itself
    assert not e.record(rng.normal(size=(5, 16)))  # already due: no second wake
    assert not e.due() and e.run_due_checks(paced=True) == 0
    assert (e.next_check_in() or 0.0) > 50.0
    assert e.run_due_checks() == 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_check_that_comes_due_after_idle_time_runs_at_once() -> None:
    clock = Clock()
    budget = CpuBudget(0.1, 2.0, clock)
    assert budget.spend(0.15) == 0.0  # a fresh thread has its burst: an MMD test, then no rest
    clock.now += 0.2
    assert budget.spend(0.15) == 0.0  # another right after: still within the burst
    for _ in range(30):  # a check of 0.15 s every 5 s is 3 % of a core, under the 10 % share: never a rest
        clock.now += 5.0
        assert budget.spend(0.15) == 0.0
    assert budget.credit == pytest.approx(2.0 - 0.15)  # the credit is capped at the burst, not hoarded


def test_sustained_load_is_throttled_to_the_budget() -> None:
    clock = Clock()
    budget = CpuBudget(0.1, 2.0, clock)
    cpu = rested = 0.0
    for _ in range(1000):  # saturation: every round is 0.05 s of CPU, back to back, then its rest
        clock.now += 0.05
        cpu += 0.05
        rest = budget.spend(0.05)
        rested += rest
        clock.now += rest
    assert rested > 0.0
    assert cpu <= 0.1 * clock.now + 2.0 + 1e-9  # never more than the share plus one burst
    assert cpu >= 0.1 * clock.now  # and the share is used, not less
    clock.now += 20.0  # idle for burst / share seconds: the whole burst is back
    assert budget.spend(1.9) == 0.0
    with pytest.raises(ValueError, match="share"):
        CpuBudget(0.0, 1.0)


def test_the_worker_rests_only_when_its_budget_is_spent() -> None:
    """Without a burst every round is paid for in rest (t / share); with the default burst the same light load
    never rests."""
    pay_first_checks()  # else a first round that imports scipy.stats outlasts the recording: 2 rounds, not 3
    rests = {}
    for burst in (0.0, 2.0):
        c = config(window=200, min_samples=50, check_every=10, check_interval_s=0.0, cpu_budget=0.5, cpu_burst_s=burst)
        m = monitor(config=c)
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
        rests[burst] = (m.cost.paused_s, m.cost.cpu_s)
    paused, cpu = rests[0.0]
    assert paused > 0 and abs(paused - cpu / 0.5) < 1e-6
    assert rests[2.0][0] == 0.0
