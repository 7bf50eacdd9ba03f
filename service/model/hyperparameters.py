"""SageMaker Object2Vec hyperparameters: exact names, ranges and defaults, parsed from strings or typed values.

A config that runs on SageMaker's built-in algorithm must run here unchanged, and the reverse: the table below
follows the developer guide's hyperparameter page (see ../shared/reference/object2vec.md §1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

COMPARATORS = ("hadamard", "concat", "abs_diff")
NETWORKS = ("hcnn", "bilstm", "pooled_embedding")
_FILENAME = re.compile(r"^[A-Za-z0-9._]*$")


class HyperparameterError(ValueError):
    """An invalid or unknown hyperparameter; the message names the parameter, the value and the valid range."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Spec:
    """One hyperparameter: its kind and valid values as SageMaker documents them."""

    kind: str  # int | float | bool | choice | int_or_auto | comparators | filename
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False

    def describe(self) -> str:
        if self.kind in ("int", "float"):
            return f"{self.kind} in [{self.low:g}, {'inf' if self.high is None else f'{self.high:g}'}]"
        if self.kind == "int_or_auto":
            return f"'auto' or int in [{self.low:g}, {self.high:g}]"
        if self.kind == "bool":
            return "'True' or 'False'"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "comparators":
            return "a comma-separated combination of " + ", ".join(COMPARATORS)
        return "a file name of [A-Za-z0-9._]"


SPECS: dict[str, Spec] = {
    "enc0_max_seq_len": Spec("int", None, 1, 5000, required=True),
    "enc0_vocab_size": Spec("int", None, 2, 3_000_000, required=True),
    "bucket_width": Spec("int", 0, 0, 100),
    "comparator_list": Spec("comparators", "hadamard, concat, abs_diff"),
    "dropout": Spec("float", 0.0, 0.0, 1.0),
    "early_stopping_patience": Spec("int", 3, 1, 5),
    "early_stopping_tolerance": Spec("float", 0.01, 0.000001, 0.1),
    "enc_dim": Spec("int", 4096, 4, 10000),
    "enc0_network": Spec("choice", "hcnn", choices=NETWORKS),
    "enc0_cnn_filter_width": Spec("int", 3, 1, 9),
    "enc0_freeze_pretrained_embedding": Spec("bool", True),
    "enc0_layers": Spec("int_or_auto", "auto", 1, 4),
    "enc0_pretrained_embedding_file": Spec("filename", ""),
    "enc0_token_embedding_dim": Spec("int", 300, 2, 1000),
    "enc0_vocab_file": Spec("filename", ""),
    "enc1_network": Spec("choice", "enc0", choices=("enc0", *NETWORKS)),
    "enc1_cnn_filter_width": Spec("int", 3, 1, 9),
    "enc1_freeze_pretrained_embedding": Spec("bool", True),
    "enc1_layers": Spec("int_or_auto", "auto", 1, 4),
    "enc1_max_seq_len": Spec("int", None, 1, 5000),
    "enc1_pretrained_embedding_file": Spec("filename", ""),
    "enc1_token_embedding_dim": Spec("int", 300, 2, 1000),
    "enc1_vocab_file": Spec("filename", ""),
    "enc1_vocab_size": Spec("int", None, 2, 3_000_000),
    "epochs": Spec("int", 30, 1, 100),
    "learning_rate": Spec("float", 0.0004, 1.0e-6, 1.0),
    "mini_batch_size": Spec("int", 32, 1, 10000),
    "mlp_activation": Spec("choice", "linear", choices=("tanh", "relu", "linear")),
    "mlp_dim": Spec("int", 512, 2, 10000),
    "mlp_layers": Spec("int", 2, 0, 10),
    "negative_sampling_rate": Spec("int", 0, 0, None),
    "num_classes": Spec("int", 2, 2, 30),
    "optimizer": Spec("choice", "adam", choices=("adadelta", "adagrad", "adam", "sgd", "rmsprop")),
    "output_layer": Spec("choice", "softmax", choices=("softmax", "mean_squared_error")),
    "tied_token_embedding_weight": Spec("bool", False),
    "token_embedding_storage_type": Spec("choice", "dense", choices=("dense", "row_sparse")),
    "weight_decay": Spec("float", 0.0, 0.0, 10000.0),
}

# Names the algorithm accepts that are not part of the model, so they are accepted, ignored and recorded
# (Hyperparameters.ignored): `_tuning_objective_metric` is what a tuning job adds to each training job it starts (the
# SDK's tuner removes it again as "reserved by SageMaker for tuning jobs"), the `_num_gpus`/`_num_kv_servers`/
# `_kvstore` keys steer the GPU/kvstore setup in SageMaker's notebooks. `sagemaker_*` keys are not among them: the SDK
# adds those to framework (script-mode) estimators only, and built-in algorithms refuse extra hyperparameters.
IGNORED = frozenset({"_tuning_objective_metric", "_num_gpus", "_num_kv_servers", "_kvstore"})

_NO_L1 = (
    "'{name}' is not an Object2Vec hyperparameter: Object2Vec has no L1 regularization. "
    "To fight overfitting use 'dropout' (0.0-1.0), 'weight_decay' (L2, 0-10000) and early stopping "
    "('early_stopping_patience', 'early_stopping_tolerance')."
)


def _bad(name: str, value: Any, spec: Spec) -> HyperparameterError:
    return HyperparameterError(name, f"invalid value {value!r} for '{name}': expected {spec.describe()}")


def _number(name: str, value: Any, spec: Spec) -> int | float:
    if isinstance(value, bool):
        raise _bad(name, value, spec)
    try:
        if spec.kind == "float":
            number: int | float = float(value)
        elif isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            number = int(value)
        else:
            number = int(str(value).strip())
    except (TypeError, ValueError):
        raise _bad(name, value, spec) from None
    if (
        number != number
        or (spec.low is not None and number < spec.low)
        or (spec.high is not None and number > spec.high)
    ):
        raise _bad(name, value, spec)
    return number


def _convert(name: str, value: Any, spec: Spec) -> Any:
    if spec.kind in ("int", "float"):
        return _number(name, value, spec)
    if spec.kind == "int_or_auto":
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return _number(name, value, Spec("int", low=spec.low, high=spec.high))
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise _bad(name, value, spec)
    if spec.kind == "choice":
        text = str(value).strip()
        if text not in spec.choices:
            raise _bad(name, value, spec)
        return text
    if spec.kind == "comparators":
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        parts = [str(p).strip() for p in items]
        if not parts or any(p not in COMPARATORS for p in parts) or len(set(parts)) != len(parts):
            raise _bad(name, value, spec)
        return ", ".join(parts)
    text = str(value)
    if not _FILENAME.match(text):
        raise _bad(name, value, spec)
    return text


@dataclass(frozen=True)
class Hyperparameters:
    """Validated Object2Vec hyperparameters with SageMaker's defaults filled in."""

    enc0_max_seq_len: int
    enc0_vocab_size: int
    bucket_width: int
    comparator_list: str
    dropout: float
    early_stopping_patience: int
    early_stopping_tolerance: float
    enc_dim: int
    enc0_network: str
    enc0_cnn_filter_width: int
    enc0_freeze_pretrained_embedding: bool
    enc0_layers: int | str
    enc0_pretrained_embedding_file: str
    enc0_token_embedding_dim: int
    enc0_vocab_file: str
    enc1_network: str
    enc1_cnn_filter_width: int
    enc1_freeze_pretrained_embedding: bool
    enc1_layers: int | str
    enc1_max_seq_len: int | None
    enc1_pretrained_embedding_file: str
    enc1_token_embedding_dim: int
    enc1_vocab_file: str
    enc1_vocab_size: int | None
    epochs: int
    learning_rate: float
    mini_batch_size: int
    mlp_activation: str
    mlp_dim: int
    mlp_layers: int
    negative_sampling_rate: int
    num_classes: int
    optimizer: str
    output_layer: str
    tied_token_embedding_weight: bool
    token_embedding_storage_type: str
    weight_decay: float
    ignored: dict[str, str] = field(default_factory=dict, compare=False)  # IGNORED keys the map held, as given

    @property
    def comparators(self) -> list[str]:
        return [c.strip() for c in self.comparator_list.split(",")]

    def encoder(self, side: int) -> dict[str, Any]:
        """The settings of encoder 0 or 1. enc1_network='enc0' gives enc1 enc0's architecture and hyperparameter
        values (SageMaker's meaning: not its weights; sharing those is the local `share_encoders` option)."""
        if side == 1 and self.enc1_network != "enc0":
            prefix = "enc1_"
            network = self.enc1_network
        else:
            prefix = "enc0_"
            network = self.enc0_network
        max_len = getattr(self, f"{prefix}max_seq_len") or self.enc0_max_seq_len
        vocab = getattr(self, f"{prefix}vocab_size") or self.enc0_vocab_size
        layers = getattr(self, f"{prefix}layers")
        if layers == "auto":
            layers = {"hcnn": 4, "bilstm": 1, "pooled_embedding": 1}[network]
        return {
            "network": network,
            "max_seq_len": max_len,
            "vocab_size": vocab,
            "layers": layers,
            "cnn_filter_width": getattr(self, f"{prefix}cnn_filter_width"),
            "token_embedding_dim": getattr(self, f"{prefix}token_embedding_dim"),
            "freeze_pretrained_embedding": getattr(self, f"{prefix}freeze_pretrained_embedding"),
            "pretrained_embedding_file": getattr(self, f"{prefix}pretrained_embedding_file"),
            "vocab_file": getattr(self, f"{prefix}vocab_file"),
        }

    def to_sagemaker(self) -> dict[str, str]:
        """The string→string map CreateTrainingJob takes; parse_hyperparameters(to_sagemaker()) round-trips."""
        out = {}
        for key in SPECS:
            value = getattr(self, key)
            if value is None or value == "":
                continue
            out[key] = str(value) if not isinstance(value, bool) else ("True" if value else "False")
        return out


def parse_hyperparameters(raw: Mapping[str, Any]) -> Hyperparameters:
    """Validate a SageMaker-style hyperparameter map (strings or typed values) and fill in the defaults."""
    values: dict[str, Any] = {}
    ignored: dict[str, str] = {}
    for name, value in raw.items():
        if name in IGNORED:
            ignored[name] = str(value)
            continue
        if name == "l1" or name.endswith("_l1") or name in ("l1_regularization", "lambda_l1"):
            raise HyperparameterError(name, _NO_L1.format(name=name))
        spec = SPECS.get(name)
        if spec is None:
            raise HyperparameterError(name, f"unknown hyperparameter '{name}' (Object2Vec accepts: {', '.join(SPECS)})")
        values[name] = _convert(name, value, spec)
    for name, spec in SPECS.items():
        if name not in values:
            if spec.required:
                raise HyperparameterError(name, f"missing required hyperparameter '{name}': expected {spec.describe()}")
            values[name] = spec.default
    return Hyperparameters(**values, ignored=ignored)
