"""Reads a model directory's metadata (hyperparameters.json, model_card.json, tokenizer) without loading weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.model.hyperparameters import Hyperparameters, parse_hyperparameters
from service.text import TextTokenizer


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
        card_file = path / "model_card.json"
        card = json.loads(card_file.read_text()) if card_file.is_file() else {}
        return cls(path, hp, card)

    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.path.name)

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
