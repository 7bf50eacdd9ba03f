"""bench.peers: the model2vec peer is distilled once and then read from the cache outside the repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("model2vec")

from model2vec import StaticModel
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from bench import peers


def fake_distill(calls: list[Path]):
    """Stands in for model2vec's distillation: a 3-word static model saved where the peer asked."""

    def distill(path: Path, pca_dims: int) -> None:
        calls.append(path)
        tok = Tokenizer(WordLevel({"[UNK]": 0, "good": 1, "bad": 2}, unk_token="[UNK]"))
        tok.pre_tokenizer = Whitespace()
        vectors = np.array([[0, 0, 1], [1, 0, 0], [-1, 0.1, 0]], dtype=np.float32)
        StaticModel(vectors=vectors, tokenizer=tok, normalize=True).save_pretrained(path)

    return distill


def test_model2vec_is_distilled_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2V_CACHE", str(tmp_path))
    calls: list[Path] = []
    monkeypatch.setattr(peers.Model2Vec, "_distill", staticmethod(fake_distill(calls)))
    first = peers.Model2Vec()
    again = peers.Model2Vec()
    assert len(calls) == 1 and calls[0].parent == tmp_path
    assert f"pca{peers.MODEL2VEC_PCA_DIMS}" in calls[0].name
    vecs = again(["good", "bad"])
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-6)
    assert float(vecs[0] @ vecs[1]) < 0
    np.testing.assert_allclose(first(["good"]), vecs[:1])
