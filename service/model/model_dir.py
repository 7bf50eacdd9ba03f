"""Reads a model directory's metadata (hyperparameters.json, model_card.json, tokenizer) without loading weights."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.model.hyperparameters import Hyperparameters, parse_hyperparameters
from service.text import TextTokenizer

log = logging.getLogger(__name__)

CARD_OBJECTS = (
    "validation_score_distribution",
    "metrics",
    "files",
    "hyperparameters",
    "channels",
    "drift_tokens",
    "training_data",
    "local_options",
)
"""Card entries its readers take apart as JSON objects; one of another type is left out rather than crash them."""


def read_card(card_file: Path) -> dict[str, Any]:
    """The model card, or what of it can be used: the card is descriptive (name, metrics, the drift monitor's
    validation scores), so a garbled one must not stop the model from serving. What is left out is logged with
    the file's name, and the routes then answer without it (no card baseline for drift, no metrics in /model)."""
    if not card_file.is_file():
        return {}
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        log.warning(
            "%s is not JSON (%s): serving without a model card (name, metrics, drift card baseline)", card_file, exc
        )
        return {}
    if not isinstance(card, dict):
        log.warning("%s holds a JSON %s, not an object: serving without a model card", card_file, type(card).__name__)
        return {}
    wrong = [key for key in CARD_OBJECTS if key in card and not isinstance(card[key], dict)]
    if wrong:
        log.warning("%s: %s not JSON objects; serving without them", card_file, ", ".join(wrong))
    return {key: value for key, value in card.items() if key not in wrong}


@dataclass(frozen=True)
class ModelDir:
    """One deployable model: the files of DESIGN.md's model directory, read once."""

    path: Path
    hp: Hyperparameters
    card: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> ModelDir:
        path = Path(path)
        if not (path / "hyperparameters.json").is_file():
            raise FileNotFoundError(f"{path} is not a model directory: hyperparameters.json is missing")
        hp = parse_hyperparameters(json.loads((path / "hyperparameters.json").read_text()))
        return cls(path, hp, read_card(path / "model_card.json"))

    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.path.name)

    @property
    def calibrated_min_score(self) -> float | None:
        """The classify min_score its adaptation job calibrated for out-of-scope answers on the held-out split
        (`evaluation.adapted.min_score` of the card); None for a model not adapted, or adapted on data without
        out-of-scope items."""
        evaluation = self.card.get("evaluation")
        adapted = evaluation.get("adapted") if isinstance(evaluation, dict) else None
        value = adapted.get("min_score") if isinstance(adapted, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value)

    def max_seq_len(self, channel: str) -> int:
        return int(self.hp.encoder(1 if channel == "in1" else 0)["max_seq_len"])

    def vocab_size(self, channel: str) -> int:
        return int(self.hp.encoder(1 if channel == "in1" else 0)["vocab_size"])

    @property
    def scorer_file(self) -> Path | None:
        path = self.path / "scorer.onnx"
        return path if path.is_file() else None

    def encoder_file(self, channel: str) -> Path:
        """encoder1.onnx serves in1 when enc1 has its own weights; otherwise both channels share encoder.onnx."""
        own = self.path / "encoder1.onnx"
        return own if channel == "in1" and own.is_file() else self.path / "encoder.onnx"

    def tokenizer(self) -> TextTokenizer:
        return TextTokenizer.from_file(self.path / "tokenizer.json", self.max_seq_len("in0"))
