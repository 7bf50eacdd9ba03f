"""TUNING.json: SageMaker's own `HyperParameterTuningJobConfig`, read and checked before any trial runs.

One file serves both `o2v tune` and SageMaker's CreateHyperParameterTuningJob, so its shape is checked against
botocore's service model for sagemaker (what AWS would accept), and its ranges against the Object2Vec schema in
service/model/hyperparameters.py (what the algorithm would accept). Every problem is collected, so one run names
them all.
No torch here: the SageMaker request is built from this module alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from service.model.hyperparameters import SPECS, HyperparameterError, parse_hyperparameters

STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")

# Objective → (direction, output_layer values that emit it, emitted by SageMaker's built-in algorithm).
METRICS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "validation:mean_squared_error": ("Minimize", ("mean_squared_error",), True),
    "validation:accuracy": ("Maximize", ("softmax",), True),
    "validation:cross_entropy": ("Minimize", ("softmax",), True),
    "validation:spearman_cosine": ("Maximize", ("softmax", "mean_squared_error"), False),
}

# "Tunable Object2Vec hyperparameters" in SageMaker's developer guide (object2vec-tuning); the built-in algorithm
# refuses ranges over anything else, `o2v tune` only warns.
SAGEMAKER_TUNABLE = frozenset(
    {
        "dropout",
        "early_stopping_patience",
        "early_stopping_tolerance",
        "enc_dim",
        "enc0_cnn_filter_width",
        "enc0_layers",
        "enc0_token_embedding_dim",
        "enc1_cnn_filter_width",
        "enc1_layers",
        "enc1_token_embedding_dim",
        "epochs",
        "learning_rate",
        "mini_batch_size",
        "mlp_activation",
        "mlp_dim",
        "mlp_layers",
        "optimizer",
        "weight_decay",
    }
)

# Auto scaling: SageMaker picks the scale itself; here a range spanning two or more decades is searched on a log
# scale (learning_rate 1e-5..1e-1 would otherwise spend 90 % of its trials above 1e-2), anything else linearly.
AUTO_LOG_SPAN = 100.0

_RANGE_KINDS = {
    "ContinuousParameterRanges": "continuous",
    "IntegerParameterRanges": "integer",
    "CategoricalParameterRanges": "categorical",
}


class TuningError(ValueError):
    """A tuning file or request that cannot run; `reasons` lists every problem found, one line each."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("refused:\n  - " + "\n  - ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Range:
    """One searched hyperparameter; numbers are already parsed, `scaling` is resolved (never Auto)."""

    name: str
    kind: str  # continuous | integer | categorical
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Linear"  # Linear | Logarithmic | ReverseLogarithmic
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class TuningSpec:
    """A checked HyperParameterTuningJobConfig and what `o2v tune` derives from it."""

    raw: dict[str, Any]
    strategy: str
    metric: str
    direction: Literal["minimize", "maximize"]  # Optuna's words
    max_trials: int
    max_parallel: int
    early_stopping: str  # Off | Auto
    ranges: tuple[Range, ...]
    seed: int | None = None
    max_runtime_s: int | None = None
    hyperband: tuple[int, int | None] = (1, None)  # (MinResource, MaxResource) in epochs
    warnings: tuple[str, ...] = field(default=())

    @property
    def metric_key(self) -> str:
        """The key of training_log.json's validation metrics that holds the objective."""
        return self.metric.split(":", 1)[1]

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.ranges]

    def grid(self) -> dict[str, list[str]]:
        return {r.name: list(r.values) for r in self.ranges}


def model_problems(params: Any, shape: Any) -> list[str]:
    """What botocore's sagemaker model says is wrong with `params` for `shape` (empty when valid).

    botocore's ParamValidator checks names, types, lengths and required members; enums it leaves to the server,
    so they are checked here from the same model.
    """
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(params, shape)
    found = [line.strip() for line in report.generate_report().splitlines() if line.strip()]
    return found or _enum_problems(params, shape, "")


def _enum_problems(value: Any, shape: Any, where: str) -> list[str]:
    if shape.type_name == "structure" and isinstance(value, dict):
        return [p for k, v in value.items() for p in _enum_problems(v, shape.members[k], f"{where}.{k}".lstrip("."))]
    if shape.type_name == "list" and isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _enum_problems(v, shape.member, f"{where}[{i}]")]
    enum = shape.enum if shape.type_name == "string" else []
    return (
        [f"Invalid value for parameter {where}: {value!r}, valid values: {', '.join(enum)}"]
        if enum and value not in enum
        else []
    )


def sagemaker_shape(name: str) -> Any:
    """A shape of botocore's sagemaker service model (an operation name gives that operation's input)."""
    from botocore.session import get_session

    model = get_session().get_service_model("sagemaker")
    return model.operation_model(name).input_shape if name in model.operation_names else model.shape_for(name)


def _number(text: str, integer: bool) -> float:
    value = float(text)
    if not math.isfinite(value) or (integer and not value.is_integer()):
        raise ValueError(text)
    return value


def _check_value(static: Mapping[str, Any], name: str, value: str, where: str, problems: list[str]) -> None:
    """The schema's own verdict on `name=value` beside the static hyperparameters (ranges, l1, relations)."""
    try:
        parse_hyperparameters({**static, name: value})
    except HyperparameterError as exc:
        problems.append(f"{where}: {exc}")


def _range(kind: str, item: dict[str, Any], where: str, static: Mapping[str, Any], problems: list[str]) -> Range | None:
    name = item["Name"]
    spec = SPECS.get(name)
    if spec is None:
        before = len(problems)
        _check_value(static, name, "0", where, problems)  # the schema words it: unknown name, or l1's reminder
        if len(problems) == before:
            problems.append(f"{where}: '{name}' steers SageMaker's setup, not the model; it cannot be tuned")
        return None
    if kind == "categorical":
        values = tuple(item["Values"])
        if len(set(values)) != len(values):
            problems.append(f"{where}: '{name}' lists a value twice")
        before = len(problems)
        for value in values:
            _check_value(static, name, value, where, problems)
        return Range(name, kind, values=values) if len(problems) == before else None
    numeric = {"continuous": ("float",), "integer": ("int", "int_or_auto")}[kind]
    if spec.kind not in numeric:
        wanted = {"float": "Continuous", "int": "Integer", "int_or_auto": "Integer"}.get(spec.kind, "Categorical")
        problems.append(f"{where}: '{name}' is {spec.describe()}; put it under {wanted}ParameterRanges")
        return None
    try:
        low, high = (_number(item[k], kind == "integer") for k in ("MinValue", "MaxValue"))
    except ValueError:
        problems.append(f"{where}: '{name}' MinValue/MaxValue must be {'integers' if kind == 'integer' else 'numbers'}")
        return None
    before = len(problems)
    for value in (item["MinValue"], item["MaxValue"]):
        _check_value(static, name, value, where, problems)
    if low > high or (kind == "continuous" and low == high):
        problems.append(f"{where}: '{name}' MinValue {item['MinValue']} must be below MaxValue {item['MaxValue']}")
    scaling = item.get("ScalingType", "Auto")
    if scaling == "Auto":
        scaling = "Logarithmic" if low > 0 and high / low >= AUTO_LOG_SPAN else "Linear"
    if scaling == "Logarithmic" and low <= 0:
        problems.append(f"{where}: '{name}' Logarithmic scaling needs MinValue > 0")
    if scaling == "ReverseLogarithmic" and (kind == "integer" or not 0 <= low < high < 1):
        problems.append(f"{where}: '{name}' ReverseLogarithmic scaling needs a continuous range within [0, 1)")
    if len(problems) != before:
        return None
    return Range(name, kind, low, high, scaling)


def check_tuning(config: Any, hyperparameters: Mapping[str, Any]) -> TuningSpec:
    """Check a HyperParameterTuningJobConfig against botocore's model and the Object2Vec schema.

    `hyperparameters` are the static ones from the training config; ranges override them trial by trial.
    Raises TuningError listing every reason the file cannot run.
    """
    problems = model_problems(config, sagemaker_shape("HyperParameterTuningJobConfig"))
    if problems:
        raise TuningError(["not a valid SageMaker HyperParameterTuningJobConfig: " + p for p in problems])
    for unsupported in ("TuningJobCompletionCriteria",):
        if unsupported in config:
            problems.append(f"'{unsupported}' is SageMaker-only; o2v tune stops at MaxNumberOfTrainingJobs")
    ranges_raw = config.get("ParameterRanges", {})
    if ranges_raw.get("AutoParameters"):
        problems.append("'AutoParameters' needs SageMaker's Autotune; give explicit ranges")
    try:
        static = parse_hyperparameters(hyperparameters)
    except HyperparameterError as exc:
        raise TuningError([f"training config: {exc}"]) from None

    objective = config["HyperParameterTuningJobObjective"]
    metric, kind = objective["MetricName"], objective["Type"]
    if metric.startswith("test:"):
        problems.append(f"objective '{metric}': tuning chooses on the validation channel, never on test data")
    elif metric not in METRICS:
        problems.append(f"objective '{metric}' is not emitted by Object2Vec; use one of {', '.join(METRICS)}")
    else:
        direction, layers, _ = METRICS[metric]
        if kind != direction:
            problems.append(f"objective '{metric}' must be {direction}d, not {kind}d")
        if static.output_layer not in layers:
            problems.append(
                f"objective '{metric}' needs output_layer {' or '.join(layers)}; "
                f"output_layer={static.output_layer} emits "
                + ", ".join(m for m, (_, ls, _) in METRICS.items() if static.output_layer in ls)
            )

    ranges: list[Range] = []
    seen: set[str] = set()
    for key, kind_name in _RANGE_KINDS.items():
        for i, item in enumerate(ranges_raw.get(key, [])):
            where = f"ParameterRanges.{key}[{i}]"
            if item["Name"] in seen:
                problems.append(f"{where}: '{item['Name']}' has more than one range")
                continue
            seen.add(item["Name"])
            if item["Name"] in ("output_layer", "num_classes"):
                problems.append(f"{where}: '{item['Name']}' decides which metrics exist; it cannot be tuned")
                continue
            found = _range(kind_name, item, where, hyperparameters, problems)
            if found is not None:
                ranges.append(found)
    if not seen:
        problems.append("ParameterRanges names no hyperparameter to tune")

    strategy = config["Strategy"]
    limits = config["ResourceLimits"]
    stopping = config.get("TrainingJobEarlyStoppingType", "Off")
    grid_size = math.prod(len(r.values) for r in ranges) if ranges else 0
    if strategy == "Grid":
        if any(r.kind != "categorical" for r in ranges):
            problems.append("Grid strategy searches CategoricalParameterRanges only")
        max_trials = min(limits.get("MaxNumberOfTrainingJobs", grid_size), grid_size)
    else:
        if "MaxNumberOfTrainingJobs" not in limits:
            problems.append(f"ResourceLimits.MaxNumberOfTrainingJobs is required for the {strategy} strategy")
        max_trials = limits.get("MaxNumberOfTrainingJobs", 0)
    hyperband = config.get("StrategyConfig", {}).get("HyperbandStrategyConfig")
    if hyperband and strategy != "Hyperband":
        problems.append("StrategyConfig.HyperbandStrategyConfig is for the Hyperband strategy only")
    if strategy == "Hyperband" and stopping != "Off":
        problems.append("Hyperband stops trials itself: TrainingJobEarlyStoppingType must be Off")
    hyperband = hyperband or {}
    if hyperband.get("MaxResource", math.inf) < hyperband.get("MinResource", 1):
        problems.append("HyperbandStrategyConfig MinResource must not exceed MaxResource")
    if problems:
        raise TuningError(problems)

    warnings = [
        f"'{r.name}' is not among SageMaker's tunable Object2Vec hyperparameters: this file runs here only"
        for r in ranges
        if r.name not in SAGEMAKER_TUNABLE
    ]
    if not METRICS[metric][2]:
        warnings.append(f"objective '{metric}' is computed by o2v only: SageMaker's Object2Vec does not emit it")
    return TuningSpec(
        raw=config,
        strategy=strategy,
        metric=metric,
        direction=kind.lower(),
        max_trials=max_trials,
        max_parallel=min(limits["MaxParallelTrainingJobs"], max(max_trials, 1)),
        early_stopping=stopping,
        ranges=tuple(ranges),
        seed=config.get("RandomSeed"),
        max_runtime_s=limits.get("MaxRuntimeInSeconds"),
        hyperband=(hyperband.get("MinResource", 1), hyperband.get("MaxResource")),
        warnings=tuple(warnings),
    )


def load_tuning(path: str | Path, hyperparameters: Mapping[str, Any]) -> TuningSpec:
    """Read TUNING.json (a bare HyperParameterTuningJobConfig) and check it."""
    try:
        config = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise TuningError([f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})"]) from None
    if not isinstance(config, dict):
        raise TuningError([f"{path}: expected a JSON object (a HyperParameterTuningJobConfig)"])
    return check_tuning(config, hyperparameters)
