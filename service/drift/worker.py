"""The background thread that runs due status checks and writes the state every persist interval."""

from __future__ import annotations

import logging
import threading
import time

from service.drift.budget import CpuBudget
from service.drift.monitor import DriftMonitor

log = logging.getLogger("service.drift")


class DriftWorker:
    """Sleeps on the monitor's wake event (set by the request path when a check comes due by count), the next
    paced check (`next_check_in`) or the persist interval. Each round's CPU time is charged to a token bucket
    (`CpuBudget`: `cpu_budget` of a core, up to `cpu_burst_s` of credit); the thread rests only while the bucket
    is in debt, so at low traffic a due check runs at once, and at saturation the monitor takes about that share
    of a core however much traffic arrives (checks then see more new scores each). Thread CPU time, not wall
    time: on a loaded machine a round waits for a core, and that wait is not the monitor's cost (BLAS helper
    threads of the MMD product are not counted either; bench.http_overhead measures the whole)."""

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor
        self.interval = monitor.config.persist_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="drift-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the due checks, write the state, stop the webhook thread."""
        self._stop.set()
        self.monitor.wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.monitor.run_due_checks()
        self.monitor.close()

    def _run(self) -> None:
        try:
            self.monitor.prepare()
        except Exception:  # a bad baseline must not stop the checks; they compute what they can
            log.exception("drift shift-test calibration failed")
        saved_at = time.monotonic()
        cost, c = self.monitor.cost, self.monitor.config
        budget = CpuBudget(c.cpu_budget, c.cpu_burst_s)
        while not self._stop.is_set():
            timeout = max(self.interval - (time.monotonic() - saved_at), 0.0)
            paced = self.monitor.next_check_in()
            self.monitor.wake.wait(timeout if paced is None else min(timeout, paced))
            self.monitor.wake.clear()
            started, cpu = time.monotonic(), time.thread_time()
            try:
                self.monitor.run_due_checks(paced=True)
                if time.monotonic() - saved_at >= self.interval:
                    saved_at = time.monotonic()
                    self.monitor.save()
            except Exception:  # the monitor must never take the service down; the next round tries again
                log.exception("drift check failed")
            busy, spent = time.monotonic() - started, time.thread_time() - cpu
            cost.rounds, cost.busy_s, cost.cpu_s = cost.rounds + 1, cost.busy_s + busy, cost.cpu_s + spent
            rest = budget.spend(spent)
            if rest > 0.0:
                cost.paused_s += rest
                self._stop.wait(rest)
