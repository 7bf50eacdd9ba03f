"""`"tune": N` of an adaptation: N fine-tunes over SageMaker's tunable hyperparameters, the best one kept.

`o2v tune`'s engine (service/object2vec/tuning.py): Optuna's TPE sampler (SageMaker's Bayesian strategy) seeded
with the job's seed, and its running-median pruner (`TrainingJobEarlyStoppingType: Auto`) fed each epoch's held-out
kNN accuracy. Every trial is one `fine_tune` from the parent on the job's own train/held-out split, with the job's
seed, so the same request gives the same trials and the same model. The objective is the task's validation metric
of the kept epoch (kNN accuracy for labelled utterances, Spearman of the cosine for pairs); the best trial's model
is the job's model, and every trial is recorded in the result and the card. Trial 1 runs the adaptation defaults
(ADAPT_DEFAULTS, or what the request set), so a tuned job keeps a model at least as good on the held-out split as
the untuned job would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from service.model.model_dir import ModelDir
from service.object2vec.adapt import AdaptConfig, AdaptResult, fine_tune
from service.object2vec.tuning import make_pruner, make_sampler, suggest
from service.object2vec.tuning_config import Range, TuningSpec

ADAPT_RANGES = (
    Range("learning_rate", "continuous", 0.002, 0.03, "Logarithmic"),
    Range("dropout", "continuous", 0.0, 0.4),
    Range("weight_decay", "continuous", 0.0, 0.001),
    Range("mini_batch_size", "categorical", values=("64", "128", "256")),
)
"""What a tuned adaptation searches, within SageMaker's ranges for Object2Vec (reference/object2vec.md §6): the
learning rate around the measured 0.01 default (0.002 was slow, 0.03 the edge of stable), dropout and weight
decay against memorising a small set, and the mini-batch, which is also the in-batch softmax's negatives. A
hyperparameter the request sets itself is not searched."""


@dataclass
class Tuned:
    """The best trial's result, and one row per trial for the job's result and the card."""

    best: AdaptResult
    best_trial: int
    metric: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    searched: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "trials": len(self.rows),
            "strategy": "Bayesian (Optuna TPE), early stopping Auto (running median)",
            "objective": f"validation:{self.metric}",
            "searched": self.searched,
            "best_trial": self.best_trial,
            "rows": self.rows,
        }


def spec_for(trials: int, metric: str, given: dict[str, Any]) -> TuningSpec:
    ranges = tuple(r for r in ADAPT_RANGES if r.name not in given)
    return TuningSpec(
        raw={"Strategy": "Bayesian", "ResourceLimits": {"MaxNumberOfTrainingJobs": trials}},
        strategy="Bayesian",
        metric=f"validation:{metric}",
        direction="maximize",
        max_trials=trials,
        max_parallel=1,
        early_stopping="Auto",
        ranges=ranges,
        seed=None,
    )


def tune(
    parent: ModelDir,
    task_of: Callable[[Any], Any],
    cfg: AdaptConfig,
    trials: int,
    metric: str,
    progress: Callable[[dict[str, Any]], None],
) -> Tuned:
    """Run `trials` fine-tunes; progress rows carry `trial` (1-based) and `trials`. Cancelled (raised by
    `progress`) stops at once; a trial that diverges (FloatingPointError) is recorded as failed."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = spec_for(trials, metric, cfg.hyperparameters)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec, cfg.seed))
    study.pruner = make_pruner(spec, int(cfg.sagemaker()["epochs"]))
    defaults = cfg.sagemaker()  # trial 1: the untuned job, so tuning never keeps a model worse than it on held-out
    study.enqueue_trial({r.name: _typed(r, defaults[r.name]) for r in spec.ranges})
    best: AdaptResult | None = None
    best_trial = 0
    rows: list[dict[str, Any]] = []
    for number in range(1, trials + 1):
        trial = study.ask()
        tuned = {r.name: suggest(trial, r) for r in spec.ranges}
        trial_cfg = AdaptConfig.from_options({**cfg.hyperparameters, **tuned}, _local(cfg))
        curve: dict[int, float] = {}

        def on_epoch(
            row: dict[str, Any], trial: optuna.Trial = trial, number: int = number, curve: dict[int, float] = curve
        ) -> None:
            progress({**row, "trial": number, "trials": trials})
            value = row["validation"].get(metric)
            if row["epoch"] > 0 and value is not None:
                curve[row["epoch"]] = float(value)
                trial.report(float(value), row["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned()

        row: dict[str, Any] = {"trial": number, "hyperparameters": tuned}
        try:
            result = fine_tune(parent, task_of, trial_cfg, on_epoch)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            rows.append({**row, "state": "pruned", "objective": None, "epochs_run": len(curve), "curve": curve})
            continue
        except FloatingPointError as exc:
            study.tell(trial, state=TrialState.FAIL)
            rows.append({**row, "state": "failed", "objective": None, "error": str(exc), "curve": curve})
            continue
        value = float(result.evaluation[metric] or 0.0)
        study.tell(trial, value)
        rows.append(
            {
                **row,
                "state": "complete",
                "objective": value,
                "epochs_run": len(result.history),
                "best_epoch": result.best_epoch,
                "seconds": result.seconds,
                "curve": curve,
            }
        )
        if best is None or value > float(best.evaluation[metric] or 0.0):
            best, best_trial = result, number
    if best is None:
        raise FloatingPointError(f"none of the {trials} tuning trials finished: {[r['state'] for r in rows]}")
    return Tuned(best, best_trial, metric, rows, [r.name for r in spec.ranges])


def _typed(r: Range, value: str) -> float | int | str:
    """A SageMaker string as the Optuna parameter `suggest` draws for range `r`."""
    return value if r.kind == "categorical" else int(value) if r.kind == "integer" else float(value)


def _local(cfg: AdaptConfig) -> dict[str, Any]:
    """The local options AdaptConfig.from_options takes back (options() adds descriptive entries it refuses)."""
    keep = ("seed", "threads", "cosine_loss_weight", "align_unseen_tokens", "k", "in_batch_temperature")
    return {k: v for k, v in cfg.options().items() if k in keep}
