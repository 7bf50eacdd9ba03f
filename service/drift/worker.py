"""The background thread that runs due status checks and writes the state every persist interval."""

from __future__ import annotations

import logging
import threading
import time

from service.drift.monitor import DriftMonitor

log = logging.getLogger("service.drift")


class DriftWorker:
    """Sleeps on the monitor's wake event (set by `record` when a stream is due) or the persist interval."""

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
        while not self._stop.is_set():
            self.monitor.wake.wait(self.interval)
            self.monitor.wake.clear()
            try:
                self.monitor.run_due_checks()
                if time.monotonic() - saved_at >= self.interval:
                    saved_at = time.monotonic()
                    self.monitor.save()
            except Exception:  # the monitor must never take the service down; the next round tries again
                log.exception("drift check failed")
