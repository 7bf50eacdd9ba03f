"""`o2v tune CONFIG TUNING.json --out DIR`: SageMaker's automatic model tuning for Object2Vec, run locally.

Every trial is one `o2v train` of CONFIG with the trial's hyperparameters, judged by the objective SageMaker would
read (`validation:<metric>` of the kept epoch). Optuna is the engine: Bayesian → TPE, Random → random, Grid →
grid, Hyperband → random samples under Optuna's Hyperband pruner; `TrainingJobEarlyStoppingType: Auto` prunes a
trial whose running average of the per-epoch validation metric is worse than the median of earlier trials' at the
same epoch, SageMaker's rule. The study lives in a storage (a journal file in DIR by default, or `--storage URL`), so
a killed run resumes and workers on several machines share one study.

DIR gets trials/<n>/ (each trial's training output), trials.csv, best/ (hyperparameters.json, config.json and the
checkpoint `o2v export` reads), summary.json and report.html.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial, TrialState
from tqdm import tqdm

from service.object2vec.journal_lock import JournalLock
from service.object2vec.train import ConfigError, TrainConfig, train
from service.object2vec.tuning_config import Range, TuningError, TuningSpec, load_tuning
from service.object2vec.tuning_report import render_report
from service.processes import pid_alive

JOURNAL = "study.journal"
HOST = socket.gethostname()


@dataclass
class TuneOptions:
    """How one `o2v tune` process runs; `worker_index` is set only in the worker processes it starts itself."""

    out: Path
    resume: bool = False
    storage: str | None = None
    study_name: str | None = None
    seed: int | None = None
    progress: bool = True
    keep_checkpoints: bool = False
    worker_index: int | None = None


class _NoSlot(Exception):
    """Raised in a trial another worker already used the study's last slot for; the trial is dropped."""


def open_storage(url: str | None, out: Path) -> BaseStorage:
    """An Optuna RDB URL (postgresql://, mysql://, sqlite:///) or a journal file path; default DIR/study.journal.

    RDB storages get a heartbeat, so a trial whose machine died is failed after two minutes and its slot reused.
    """
    if url and "://" in url:
        with _stable():
            return RDBStorage(url, heartbeat_interval=30, grace_period=120)
    path = Path(url) if url else out / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalLock(str(path))))


@contextmanager
def _stable() -> Iterator[None]:
    """Quiet Optuna's "experimental" notes for the features used here (heartbeat, multivariate TPE): stable enough
    since Optuna 3, and every worker process would print them again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _counts(t: FrozenTrial) -> bool:
    """Whether a trial uses one of MaxNumberOfTrainingJobs: not one dropped for lack of a slot or interrupted."""
    if t.state == TrialState.FAIL:
        return "error" in t.user_attrs
    return True


def _used(study: optuna.Study) -> int:
    return sum(_counts(t) for t in study.get_trials(deepcopy=False))


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and _counts(t)]


def make_sampler(spec: TuningSpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.strategy == "Grid":
        return optuna.samplers.GridSampler(spec.grid(), seed=seed)
    if spec.strategy == "Bayesian":
        startup = min(10, max(2, spec.max_trials // 3))
        with _stable():
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True
            )
    return optuna.samplers.RandomSampler(seed=seed)  # Random, and Hyperband's own random sampling


def make_pruner(spec: TuningSpec, max_epochs: int) -> optuna.pruners.BasePruner:
    if spec.strategy == "Hyperband":
        low, high = spec.hyperband
        return optuna.pruners.HyperbandPruner(min_resource=low, max_resource=high or max_epochs, reduction_factor=3)
    if spec.early_stopping == "Auto":
        return RunningMedianPruner(min_trials=min(5, max(2, spec.max_trials // 6)))
    return optuna.pruners.NopPruner()


class RunningMedianPruner(optuna.pruners.BasePruner):
    """SageMaker's `TrainingJobEarlyStoppingType: Auto` rule: stop a trial at epoch N when the running average of
    its objective up to N is worse than the median of earlier trials' running averages up to N.

    It judges only once `min_trials` trials have finished, so the first ones set the bar.
    """

    def __init__(self, min_trials: int) -> None:
        self.min_trials = min_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if len(done) < self.min_trials:
            return False
        others = [a for a in (_running_mean(t.intermediate_values, step) for t in done) if a is not None]
        mine = _running_mean(trial.intermediate_values, step)
        if mine is None or len(others) < self.min_trials:
            return False
        median = float(np.median(others))
        return mine > median if study.direction == StudyDirection.MINIMIZE else mine < median


def _running_mean(curve: dict[int, float], step: int) -> float | None:
    """Mean of a trial's reported values up to `step`, only if it reached that step."""
    values = [v for s, v in curve.items() if s <= step]
    return float(np.mean(values)) if values and max(curve) >= step else None


def trial_threads(parallel: int) -> int:
    """Torch threads of each trial when the config names none: the cores shared among the `parallel` trial processes,
    and at most OMP_NUM_THREADS when the environment sets it. train() sets the count itself, so without this cap a
    user's (or a CI runner's) OMP_NUM_THREADS=1 became two spinning threads per trial on a 2-core box."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    cap = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(threads, int(cap)) if cap.isdigit() and int(cap) > 0 else threads


def suggest(trial: Trial, r: Range) -> str:
    """The trial's value for one range, as the string SageMaker would pass to the algorithm."""
    if r.kind == "categorical":
        return str(trial.suggest_categorical(r.name, list(r.values)))
    if r.kind == "integer":
        return str(trial.suggest_int(r.name, int(r.low), int(r.high), log=r.scaling == "Logarithmic"))
    if r.scaling == "ReverseLogarithmic":  # dense near MaxValue: search 1 - x on a log scale
        return format(1.0 - trial.suggest_float(r.name, 1.0 - r.high, 1.0 - r.low, log=True), ".6g")
    return format(trial.suggest_float(r.name, r.low, r.high, log=r.scaling == "Logarithmic"), ".6g")


class TuningJob:
    """One tuning study: the training config, the checked TUNING.json and where its trials are kept."""

    def __init__(self, config_path: str | Path, tuning_path: str | Path, options: TuneOptions) -> None:
        self.config_path = Path(config_path).resolve()
        self.tuning_path = Path(tuning_path).resolve()
        self.raw = json.loads(self.config_path.read_text())
        self.base = self.config_path.parent
        self.options = options
        self.out = Path(options.out).resolve()
        self.static = dict(self.raw.get("hyperparameters", {}))
        self.spec = load_tuning(tuning_path, self.static)
        cfg = TrainConfig.from_dict(self.raw, self.base)
        if "validation" not in cfg.channels:
            raise ConfigError("tuning needs a 'validation' channel in the config: the objective is measured there")
        epochs = [int(r.high) for r in self.spec.ranges if r.name == "epochs" and r.kind == "integer"]
        self.max_epochs = max(epochs or [cfg.hp.epochs])
        self.threads = cfg.threads or trial_threads(self.spec.max_parallel)
        self.study_name = options.study_name or self.out.name
        self.storage = open_storage(options.storage, self.out)

    # -- the study ------------------------------------------------------------------------------------------------
    def study(self) -> optuna.Study:
        """Create, resume or join the study, refusing one that was started from a different config or TUNING.json."""
        names = [s.study_name for s in self.storage.get_all_studies()]
        joining = self.options.worker_index is not None or self.options.storage is not None
        if self.study_name in names and not (self.options.resume or joining):
            raise TuningError([f"{self.out} already holds tuning study '{self.study_name}': pass --resume to continue"])
        if self.study_name not in names and self.options.resume and not joining:
            raise TuningError([f"--resume: no tuning study '{self.study_name}' in {self.out}"])
        study = optuna.create_study(
            storage=self.storage, study_name=self.study_name, direction=self.spec.direction, load_if_exists=True
        )
        # What defines the search; MaxParallelTrainingJobs may differ from machine to machine.
        search = json.loads(json.dumps(self.spec.raw))
        search["ResourceLimits"].pop("MaxParallelTrainingJobs")
        for key, value in {"tuning": search, "hyperparameters": self.static}.items():
            if key not in study.user_attrs:
                study.set_user_attr(key, value)
            elif study.user_attrs[key] != value:
                name = "TUNING.json" if key == "tuning" else "training config hyperparameters"
                raise TuningError([f"study '{self.study_name}' was started with another {name}; use a new study"])
        seed = self.options.seed if self.options.seed is not None else (self.spec.seed or 0)
        seed += 7919 * (self.options.worker_index or 0) + len(study.trials)
        if self.options.storage is not None:
            seed += os.getpid()  # machines joining one study must not draw the same random points
        study.sampler = make_sampler(self.spec, seed)
        study.pruner = make_pruner(self.spec, self.max_epochs)
        return study

    def fail_dead_trials(self, study: optuna.Study) -> int:
        """Mark trials left RUNNING by a killed process on this machine as interrupted (their slot is reused).

        In DIR's own journal every RUNNING trial is this machine's, even one killed before it named its process.
        """
        dead = 0
        study_id = self.storage.get_study_id_from_name(study.study_name)
        own = self.options.storage is None
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            host = t.user_attrs.get("host", HOST if own else None)
            if host != HOST or pid_alive(t.user_attrs.get("pid")):
                continue
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            dead += 1
        return dead

    # -- one trial ------------------------------------------------------------------------------------------------
    def objective(self, trial: Trial) -> float:
        study = trial.study
        # pid before host: fail_dead_trials in another process on this machine takes a trial with our host and no
        # pid yet for a dead one (seen under load: "Cannot tell a FAIL trial").
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", HOST)
        ahead = sum(_counts(t) for t in study.get_trials(deepcopy=False) if t.number < trial.number)
        if ahead >= self.spec.max_trials:
            raise _NoSlot
        hp = {**self.static, **{r.name: suggest(trial, r) for r in self.spec.ranges}}
        trial.set_user_attr("hyperparameters", hp)
        folder = self.out / "trials" / f"{trial.number:04d}"
        raw = {**self.raw, "hyperparameters": hp, "threads": self.threads}
        cfg = TrainConfig.from_dict(raw, self.base, folder)
        key, epochs = self.spec.metric_key, 0

        def on_epoch(epoch: int, row: dict[str, Any]) -> None:
            nonlocal epochs
            epochs = epoch
            value = row["validation"][key]
            if math.isfinite(value):
                trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: {self.spec.metric} {value:.6g}")

        started = time.time()
        try:
            log = train(cfg, progress=False, on_epoch=on_epoch)
        except FloatingPointError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        finally:
            trial.set_user_attr("epochs_run", epochs)
            trial.set_user_attr("seconds", round(time.time() - started, 1))
        value = log["validation"][key]
        if not math.isfinite(value):
            trial.set_user_attr("error", f"{self.spec.metric} is {value}")
            raise FloatingPointError(f"{self.spec.metric} is {value}")
        kept = log["epochs"][log["best_epoch"] - 1]
        trial.set_user_attr("best_epoch", log["best_epoch"])
        trial.set_user_attr("train_loss", kept["train_loss"])
        trial.set_user_attr("validation", log["validation"])
        trial.set_user_attr("folder", str(folder))
        return float(value)

    def work(self, study: optuna.Study, deadline: float) -> None:
        """Run trials until the study has MaxNumberOfTrainingJobs of them (or MaxRuntimeInSeconds passes)."""
        while _used(study) < self.spec.max_trials and time.time() < deadline:
            study.optimize(self.objective, n_trials=1, catch=(FloatingPointError, _NoSlot))

    # -- the whole run --------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures and prunes are in trials.csv, not the log
        study = self.study()
        deadline = time.time() + (self.spec.max_runtime_s or math.inf)
        if self.options.worker_index is not None:
            self.work(study, deadline)
            return {}
        self.fail_dead_trials(study)
        for line in self.spec.warnings:
            print(f"note: {line}", file=sys.stderr)
        workers = [self._spawn(i) for i in range(1, self.spec.max_parallel)]
        progress = _Progress(study, self.spec.max_trials, self.options.progress)
        try:
            self.work(study, deadline)
            for proc in workers:
                proc.wait()
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
            progress.close()
        return write_outputs(self, study)

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        """A worker process on this machine sharing the study (a journal file or an RDB URL)."""
        storage = self.options.storage or str(self.out / JOURNAL)
        cmd = [sys.executable, "-m", "service.cli", "tune", str(self.config_path), str(self.tuning_path)]
        cmd += ["--out", str(self.out)]
        cmd += ["--storage", storage, "--study-name", self.study_name, "--worker-index", str(index), "--quiet"]
        if self.options.seed is not None:
            cmd += ["--seed", str(self.options.seed)]
        return subprocess.Popen(cmd)


class _Progress:
    """A tqdm bar over the study's trials, fed by polling the storage, so trials of every worker count."""

    def __init__(self, study: optuna.Study, total: int, enabled: bool) -> None:
        self.study = study
        self.total = total
        self.bar = tqdm(total=total, desc="trials", unit="trial", disable=not enabled)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        if enabled:
            self.thread.start()

    def _poll(self) -> None:
        while not self.stop.wait(1.0):
            self.update()

    def update(self) -> None:
        done = _finished(self.study)
        complete = [t.value for t in done if t.state == TrialState.COMPLETE and t.value is not None]
        pruned = sum(t.state == TrialState.PRUNED for t in done)
        self.bar.n = min(len(done), self.total)
        if complete:
            best = min(complete) if self.study.direction.name == "MINIMIZE" else max(complete)
            self.bar.set_postfix(best=f"{best:.5g}", pruned=pruned, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        if not self.bar.disable:
            self.update()
        self.bar.close()


# -- outputs --------------------------------------------------------------------------------------------------------
STATE = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def trial_rows(study: optuna.Study, names: list[str]) -> list[dict[str, Any]]:
    """One row per trial that used a slot (or was interrupted): what trials.csv and the report show."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.FAIL and "hyperparameters" not in t.user_attrs:
            continue  # dropped before it started: another worker had the last slot
        attrs = t.user_attrs
        state = STATE[t.state] if _counts(t) else "interrupted"
        seconds = attrs.get("seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
        rows.append(
            {
                "trial": t.number,
                "state": state,
                "objective": t.value if t.state == TrialState.COMPLETE else None,
                "epochs_run": attrs.get("epochs_run", len(t.intermediate_values)),
                "best_epoch": attrs.get("best_epoch"),
                "pruned": t.state == TrialState.PRUNED,
                "seconds": seconds,
                "host": attrs.get("host", ""),
                "pid": attrs.get("pid"),
                **{name: attrs.get("hyperparameters", {}).get(name) for name in names},
                "curve": dict(sorted(t.intermediate_values.items())),
                "error": attrs.get("error", ""),
            }
        )
    return rows


def importances(study: optuna.Study, names: list[str]) -> dict[str, float]:
    """PED-ANOVA importances over complete trials (no scikit-learn needed); empty while there are too few."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 4 or len(names) < 1:
        return {}
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=names)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {k: float(v) for k, v in found.items()}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = [k for k in rows[0] if k != "curve"] if rows else ["trial", "state", "objective"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})


def _write_best(job: TuningJob, best: FrozenTrial) -> dict[str, Any]:
    """best/: the SageMaker string map, a config `o2v train` runs, and the checkpoint `o2v export` reads."""
    folder = job.out / "best"
    folder.mkdir(parents=True, exist_ok=True)
    hp = best.user_attrs["hyperparameters"]
    (folder / "hyperparameters.json").write_text(json.dumps(hp, indent=1) + "\n")
    config = {**job.raw, "hyperparameters": hp, "output_dir": str(folder / "retrained")}
    config["channels"] = {k: str((job.base / v).resolve()) for k, v in job.raw["channels"].items()}
    for key in ("auxiliary", "tokenizer"):
        if key in config:
            config[key] = str((job.base / config[key]).resolve())
    (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    source = Path(best.user_attrs.get("folder", ""))
    marker = folder / "checkpoint" / "trial.json"
    have = json.loads(marker.read_text())["trial"] if marker.is_file() else None
    if have != best.number and (source / "checkpoint.pt").is_file() and best.user_attrs.get("host") == HOST:
        target = folder / "checkpoint"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for name in ("checkpoint.pt", "training_log.json"):
            shutil.copy2(source / name, target / name)
        marker.write_text(json.dumps({"trial": best.number, "study": job.study_name}) + "\n")
        have = best.number
    if have == best.number:
        return {"checkpoint": str(folder / "checkpoint")}
    where = f"{best.user_attrs.get('host')}:{source}"
    return {
        "checkpoint": None,
        "note": f"the best trial's checkpoint is on {where}; or run o2v train {folder}/config.json",
    }


def write_outputs(job: TuningJob, study: optuna.Study) -> dict[str, Any]:
    """trials.csv, best/, summary.json and report.html from whatever the study holds now."""
    names = job.spec.names
    rows = trial_rows(study, names)
    job.out.mkdir(parents=True, exist_ok=True)
    _write_csv(job.out / "trials.csv", rows)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    summary: dict[str, Any] = {
        "study": job.study_name,
        "strategy": job.spec.strategy,
        "objective": {"metric": job.spec.metric, "direction": job.spec.direction},
        "max_trials": job.spec.max_trials,
        "trials": {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "failed", "interrupted")},
        "seconds": round(sum(r["seconds"] or 0 for r in rows), 1),
    }
    if complete:
        best = study.best_trial
        summary["best"] = {
            "trial": best.number,
            "objective": best.value,
            "tuned": {n: best.user_attrs["hyperparameters"][n] for n in names},
            "validation": best.user_attrs.get("validation", {}),
            **_write_best(job, best),
        }
        if not job.options.keep_checkpoints:
            for t in complete:
                if t.number != best.number and t.user_attrs.get("host") == HOST:
                    Path(t.user_attrs.get("folder", job.out / "missing"), "checkpoint.pt").unlink(missing_ok=True)
    found = importances(study, names)
    summary["importances"] = found
    (job.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (job.out / "report.html").write_text(render_report(summary, rows, found, job.spec))
    return summary


def tune(config: str | Path, tuning: str | Path, options: TuneOptions) -> dict[str, Any]:
    """Run (or resume, or join) a tuning study and write its outputs; returns summary.json's content."""
    return TuningJob(config, tuning, options).run()
