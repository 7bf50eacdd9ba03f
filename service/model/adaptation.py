"""Running an adaptation in its own process: the request file, the niced child, its progress and result (no torch).

A job folder holds `request.json` (the data and the settings), `progress.jsonl` (one line per epoch, appended by the
child), `result.json` (written last, atomically) or `error.json`, and `cancel` (created to ask the child to stop
at the next epoch). The child is `python -m service.object2vec.adapt_job JOB_DIR OUT_DIR`: torch is imported only
there, so the server keeps its memory and its latency while a model trains.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.model.labelled import Labelled

INSTALL_HINT = "pip install 'object2vec-service[train]'  (or: pip install -e '.[train]' in a checkout)"
REQUEST, PROGRESS, RESULT, ERROR, CANCEL = "request.json", "progress.jsonl", "result.json", "error.json", "cancel"
ADAPT_NICENESS = 10
"""The nice value of the training child: it yields the CPU to the server it shares a machine with (requests keep
their latency while a model trains) and still gets every idle cycle; its thread count is O2V_ADAPT_THREADS."""
REPORT = "report.html"
"""The job's HTML report, written beside result.json and into the model directory."""
MAX_TUNE_TRIALS = 20
"""Most tuning trials one job may run (`"tune": N`): each is a whole fine-tune (about 2 minutes for CLINC150's
15,000 utterances on one core), so 20 is the better part of an hour; a research knob, not a setting."""


class TrainingUnavailable(RuntimeError):
    """The `train` extra (torch, onnx) is not installed; the message carries the install command."""


def check_train_extra() -> None:
    missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise TrainingUnavailable(
            f"adaptation trains with PyTorch, which is not installed here (missing: {', '.join(missing)}); "
            f"install the train extra: {INSTALL_HINT}"
        )


@dataclass
class AdaptRequest:
    """What a job trains: the parent model directory, the team's data (and a held-out split, or the fraction to
    hold out), SageMaker hyperparameters over the adaptation defaults and local options (seed, threads, ...)."""

    name: str
    parent: Path
    train: Labelled
    held_out: Labelled | None = None
    held_out_fraction: float = 0.2
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    sts_dev: Path | None = None
    """STS-B dev (sts-dev.csv) for the generic guard; None: the guard is skipped with a note."""
    pairs: list[tuple[str, str, float]] | None = None
    """Object2Vec pairs as text (text0, text1, label in [0, 1]) instead of labelled utterances (`train` empty)."""
    tune: int = 0
    """Tuning trials (service/object2vec/adapt_tuning.py); 0: one fine-tune with the hyperparameters as given."""

    def to_json(self) -> dict[str, Any]:
        def data(d: Labelled | None) -> dict[str, Any] | None:
            return None if d is None else {"texts": d.texts, "labels": d.labels, "oos_label": d.oos_label}

        return {
            "name": self.name,
            "parent": str(self.parent),
            "train": data(self.train),
            "held_out": data(self.held_out),
            "held_out_fraction": self.held_out_fraction,
            "hyperparameters": self.hyperparameters,
            "options": self.options,
            "source": self.source,
            "sts_dev": None if self.sts_dev is None else str(self.sts_dev),
            "pairs": self.pairs,
            "tune": self.tune,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AdaptRequest:
        def data(d: dict[str, Any] | None) -> Labelled | None:
            return None if d is None else Labelled(list(d["texts"]), list(d["labels"]), d.get("oos_label"))

        train = data(raw["train"])
        assert train is not None
        return cls(
            name=raw["name"],
            parent=Path(raw["parent"]),
            train=train,
            held_out=data(raw.get("held_out")),
            held_out_fraction=float(raw.get("held_out_fraction", 0.2)),
            hyperparameters=dict(raw.get("hyperparameters", {})),
            options=dict(raw.get("options", {})),
            source=str(raw.get("source", "")),
            sts_dev=Path(raw["sts_dev"]) if raw.get("sts_dev") else None,
            pairs=[(str(a), str(b), float(y)) for a, b, y in raw["pairs"]] if raw.get("pairs") else None,
            tune=int(raw.get("tune", 0)),
        )


def write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def spawn(job_dir: Path, out_dir: Path, niceness: int = ADAPT_NICENESS) -> subprocess.Popen[bytes]:
    """Start the training child, niced, its output in job_dir/log.txt; it runs in its own session so that a
    signal meant for the server's process group does not reach it halfway through writing."""
    log = open(job_dir / "log.txt", "ab")  # noqa: SIM115 (the child owns it)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "service.object2vec.adapt_job", str(job_dir), str(out_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
            start_new_session=True,
        )
    finally:
        log.close()


def read_progress(job_dir: Path) -> list[dict[str, Any]]:
    path = job_dir / PROGRESS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            break
    return rows


def log_tail(job_dir: Path, chars: int = 2000) -> str:
    path = job_dir / "log.txt"
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


def run_in_child(request: AdaptRequest, out_dir: Path, job_dir: Path, niceness: int = ADAPT_NICENESS) -> dict[str, Any]:
    """Train in a child process and wait: the bench's path. Returns the child's wall seconds and peak RSS."""
    check_train_extra()
    job_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job_dir / REQUEST, request.to_json())
    started = time.perf_counter()
    child = spawn(job_dir, out_dir, niceness)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = round(time.perf_counter() - started, 1)
    if child.returncode != 0 or not (job_dir / RESULT).is_file():
        error = json.loads((job_dir / ERROR).read_text()) if (job_dir / ERROR).is_file() else {}
        raise RuntimeError(f"adaptation failed ({child.returncode}): {error.get('message') or log_tail(job_dir)}")
    return {"seconds": seconds, "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), **_result(job_dir)}


def _result(job_dir: Path) -> dict[str, Any]:
    return json.loads((job_dir / RESULT).read_text())


def peak_rss_children_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
