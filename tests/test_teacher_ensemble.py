"""The pooled-ensemble recipe's helpers that need no teacher run: the two-teacher ensemble, the shared pool and the
mpnet path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from service.datasets import read_clinc, read_sts
from service.object2vec.teacher import TeacherCache, ensemble_vectors, mpnet_path, pool_sentences


def _fill(folder, vectors: dict[str, list[float]]) -> None:
    """A teacher cache as a finished run leaves it (texts.json + vectors.npy), normalised rows."""
    folder.mkdir(parents=True)
    rows = np.array(list(vectors.values()), dtype=np.float32)
    np.save(folder / "vectors.npy", rows / np.linalg.norm(rows, axis=1, keepdims=True))
    (folder / "texts.json").write_text(json.dumps(list(vectors)))


def test_ensemble_dot_product_is_the_weighted_mean_of_the_teachers_cosines(tmp_path) -> None:
    _fill(tmp_path / "small", {"a": [1, 0], "b": [1, 1], "c": [0, 1]})
    _fill(tmp_path / "big", {"c": [1, 2, 2], "a": [1, 0, 0], "b": [0, 0, 1]})
    texts = ["a", "b", "c"]
    small, big = TeacherCache(tmp_path / "small", None)(texts), TeacherCache(tmp_path / "big", None)(texts)
    vecs = ensemble_vectors(texts, (("small", 0.25), ("big", 0.75)), tmp_path)
    assert vecs.shape == (3, 5)
    assert np.allclose(vecs @ vecs.T, 0.25 * small @ small.T + 0.75 * big @ big.T, atol=1e-6)
    assert np.allclose(np.diag(vecs @ vecs.T), 1.0, atol=1e-6)  # still unit rows: a text's self-cosine is 1


def test_one_teacher_at_weight_one_is_its_cache_unchanged(tmp_path) -> None:
    _fill(tmp_path / "small", {"a": [3, 4], "b": [1, 0]})
    assert np.array_equal(
        ensemble_vectors(["b", "a"], (("small", 1.0),), tmp_path), TeacherCache(tmp_path / "small", None)(["b", "a"])
    )


def test_teacher_cache_drops_rows_saved_past_its_text_list(tmp_path) -> None:
    _fill(tmp_path / "t", {"a": [1, 0], "b": [0, 1]})
    (tmp_path / "t" / "texts.json").write_text(json.dumps(["a"]))  # stopped between the vectors and the texts save
    cache = TeacherCache(tmp_path / "t", None)
    assert cache.vectors.shape == (1, 2) and cache.missing(["a", "c"]) == ["c"]


def test_pool_holds_sts_train_and_clinc_but_no_sts_dev_or_test_only_sentence(public_data: Path) -> None:
    """On the stand-in datasets (tests/public_data_fixtures.py), which have the real files' layout."""
    train = read_sts("train")
    pool = pool_sentences(train)
    assert {train[0].a, train[0].b} <= pool
    assert {t for t, _ in read_clinc("val")} <= pool
    seen_elsewhere = pool_sentences([])
    held_out = {p.a for p in read_sts("test")} - {p.a for p in train} - {p.b for p in train} - seen_elsewhere
    assert held_out and not held_out & pool


def test_mpnet_path_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("O2V_MPNET", str(tmp_path / "m"))
    assert mpnet_path() == tmp_path / "m"
    monkeypatch.delenv("O2V_MPNET")
    monkeypatch.setenv("O2V_CACHE", str(tmp_path))
    assert mpnet_path() == tmp_path / "all-mpnet-base-v2" / "all-mpnet-base-v2"
