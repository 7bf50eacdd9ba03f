"""Shared bench helpers: a model directory's encoder as a plain function, timing medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from service.encoders.base import l2_normalize
from service.encoders.onnx import OnnxEncoder
from service.model.model_dir import ModelDir


class OnnxModel:
    """A model directory through the service's own OnnxEncoder (tokenize + encoder.onnx), L2-normalised."""

    def __init__(self, model_dir: str | Path) -> None:
        self.encoder = OnnxEncoder(ModelDir.load(model_dir))
        self.name = Path(model_dir).name
        self.network = self.encoder.model.hp.enc0_network

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return l2_normalize(self.encoder.embed_texts(texts))


class MiniLM:
    """The peer: all-MiniLM-L6-v2 through sentence-transformers (torch), normalised embeddings."""

    name = "all-MiniLM-L6-v2"
    network = "transformer (6 layers)"

    def __init__(self) -> None:
        from service.object2vec.teacher import load_teacher

        self.model = load_teacher()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        from service.object2vec.teacher import encode

        return encode(self.model, list(texts), batch_size=64)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
