"""The encoders a bench run compares: model directories, all-MiniLM-L6-v2 and a model2vec distilled from it.

model2vec (PyPI `model2vec[distill]`, the `teacher` extra) is the off-the-shelf way to turn the same teacher into
a static table: one forward pass per token, PCA, SIF weights. It is the peer a pooled Object2Vec has to beat for its
training to be worth it. Distilling takes minutes on 2 cores, so the result is cached outside the repository
(O2V_CACHE, default ~/.cache/o2v), keyed by the model2vec version and the distillation parameters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import MiniLM, OnnxModel
from service.settings import Settings

MODEL2VEC_PCA_DIMS = 256  # model2vec's default: its recommended setting, not tuned here


def cache_dir() -> Path:
    return Settings().cache


class Model2Vec:
    """model2vec distilled from the installed all-MiniLM-L6-v2 (offline), encoded with its own tokenizer."""

    name = "model2vec (MiniLM)"

    def __init__(self, pca_dims: int = MODEL2VEC_PCA_DIMS) -> None:
        from model2vec import StaticModel
        from model2vec.version import __version__

        self.network = f"static (model2vec {__version__}, PCA {pca_dims}, SIF)"
        path = cache_dir() / f"model2vec-{__version__}-minilm-l6-v2-pca{pca_dims}"
        if not (path / "config.json").exists():
            self._distill(path, pca_dims)
        self.model = StaticModel.from_pretrained(path)

    @staticmethod
    def _distill(path: Path, pca_dims: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from model2vec.distill import distill

        from service.object2vec.teacher import teacher_path

        model = distill(str(teacher_path()), pca_dims=pca_dims, device="cpu")
        model.save_pretrained(path)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self.model.encode(list(texts), normalize=True, use_multiprocessing=False)
        return np.asarray(vecs, dtype=np.float32)


def systems(model_dirs: Sequence[str | Path], minilm: bool = True, model2vec: bool = True) -> list:
    """The model directories, then the peers asked for: what every bench compares in one run."""
    out: list = [OnnxModel(d) for d in model_dirs]
    if minilm:
        out.append(MiniLM())
    if model2vec:
        out.append(Model2Vec())
    return out
