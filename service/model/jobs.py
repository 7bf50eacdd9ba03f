"""Adaptation jobs of a server: one at a time (a second while one runs is refused, 409), each a folder under
`data_dir/.o2v/jobs/ID` (service/model/adaptation.py's protocol) plus `state.json`.

Statuses: queued → running → succeeded / failed / cancelled. A job found `queued` or `running` when the server
starts is marked failed with the reason (its child, if it still runs, is stopped first), so no job stays running
forever. Cancelling stops the child at once: its export only ever renames a finished folder into the registry, so a
killed job leaves no half-written model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from service.model.adaptation import (
    ADAPT_NICENESS,
    ERROR,
    REPORT,
    REQUEST,
    RESULT,
    AdaptRequest,
    log_tail,
    read_progress,
    spawn,
    write_json_atomic,
)
from service.processes import pid_alive

STATE_FILE = "state.json"
DONE = ("succeeded", "failed", "cancelled")


class JobConflict(RuntimeError):
    """Another adaptation job is running (409)."""


class UnknownJob(LookupError):
    """No job with that id (404)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AdaptJobs:
    def __init__(self, data_dir: Path, niceness: int = ADAPT_NICENESS) -> None:
        self.root = Path(data_dir) / ".o2v" / "jobs"
        self.niceness = niceness
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def _dir(self, job_id: str) -> Path:
        if not job_id.isalnum() or not (self.root / job_id / STATE_FILE).is_file():
            raise UnknownJob(f"no adaptation job {job_id!r}")
        return self.root / job_id

    def _state(self, job_id: str) -> dict[str, Any]:
        return dict(json.loads((self._dir(job_id) / STATE_FILE).read_text()))

    def _write(self, job_dir: Path, state: dict[str, Any]) -> None:
        write_json_atomic(job_dir / STATE_FILE, state)

    def recover(self) -> list[str]:
        """At start: jobs left queued or running by a server that stopped are failed, their children stopped."""
        failed: list[str] = []
        if not self.root.is_dir():
            return failed
        for job_dir in sorted(self.root.iterdir()):
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                state = json.loads((job_dir / STATE_FILE).read_text())
                if state.get("status") in DONE:
                    continue
                pid = state.get("pid")
                if pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(int(pid), signal.SIGKILL)
                state.update(status="failed", finished=_now(), error="the server restarted while the job ran")
                self._write(job_dir, state)
                failed.append(job_dir.name)
        return failed

    def running(self) -> str | None:
        for job_id in list(self.children):
            if self.status(job_id)["status"] not in DONE:
                return job_id
        return None

    def submit(self, request: AdaptRequest, out_dir: Path) -> str:
        """Start a job; JobConflict while another one runs (queued jobs would hold the CPU for hours unseen)."""
        busy = self.running()
        if busy is not None:
            raise JobConflict(f"adaptation job {busy} is running; wait for it or DELETE /jobs/{busy}")
        job_id = uuid.uuid4().hex[:16]
        job_dir = self.root / job_id
        job_dir.mkdir(parents=True)
        write_json_atomic(job_dir / REQUEST, request.to_json())
        state = {"id": job_id, "model": request.name, "status": "queued", "created": _now(), "out": str(out_dir)}
        self._write(job_dir, state)
        child = spawn(job_dir, out_dir, self.niceness)
        self.children[job_id] = child
        self._write(job_dir, {**state, "status": "running", "started": _now(), "pid": child.pid})
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's state, its progress (one row per epoch so far) and, once done, its result or error; a child
        that has ended is read here (the state file then records how)."""
        job_dir = self._dir(job_id)
        state = self._state(job_id)
        child = self.children.get(job_id)
        if state["status"] == "running" and child is not None and child.poll() is not None:
            if (job_dir / RESULT).is_file():
                state.update(status="succeeded")
            else:
                error = json.loads((job_dir / ERROR).read_text()) if (job_dir / ERROR).is_file() else {}
                state.update(
                    status=error.get("status", "failed"),
                    error=error.get("message") or f"exit code {child.returncode}: {log_tail(job_dir, 600)}",
                )
            state["finished"] = _now()
            self._write(job_dir, state)
            self.children.pop(job_id, None)
        history = read_progress(job_dir)
        request = json.loads((job_dir / REQUEST).read_text())
        epochs = int(request.get("hyperparameters", {}).get("epochs", 0)) or None
        last = history[-1] if history else {}
        progress = {"epoch": last.get("epoch"), "epochs": epochs, "history": history}
        if request.get("tune"):  # tuning: which trial of how many the epochs belong to
            progress.update(trial=last.get("trial"), trials=int(request["tune"]))
        out: dict[str, Any] = {
            **{k: v for k, v in state.items() if k not in ("pid", "out")},
            "progress": progress,
            "result": json.loads((job_dir / RESULT).read_text()) if state["status"] == "succeeded" else None,
        }
        return out

    def report(self, job_id: str) -> str | None:
        """The HTML report of a job that succeeded (None while it runs, or when it failed or was cancelled)."""
        if self.status(job_id)["status"] != "succeeded":
            return None
        path = self._dir(job_id) / REPORT
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def cancel(self, job_id: str) -> dict[str, Any]:
        state = self.status(job_id)
        if state["status"] in DONE:
            return state
        child = self.children.get(job_id)
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            child.wait()
            self.children.pop(job_id, None)
        job_dir = self._dir(job_id)
        self._write(job_dir, {**self._state(job_id), "status": "cancelled", "finished": _now()})
        return self.status(job_id)

    def failed_model(self, name: str) -> str | None:
        """The id of a failed or cancelled job that was to write model `name` (promoting that name is a 409)."""
        if not self.root.is_dir():
            return None
        for job_dir in self.root.iterdir():
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                state = json.loads((job_dir / STATE_FILE).read_text())
                if state.get("model") == name and state.get("status") in ("failed", "cancelled"):
                    return str(state["id"])
        return None

    def close(self) -> None:
        """Server shutdown: stop children (their jobs are marked failed at the next start)."""
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            child.wait()
