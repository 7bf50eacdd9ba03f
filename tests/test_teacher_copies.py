"""The candidate recipes' helpers that need no teacher: negated copies and the teacher-embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.object2vec.teacher import RECIPES, TeacherCache, build_recipe, negate


def test_negate_removes_or_inserts_one_negation() -> None:
    assert negate("I don't like it") == "I do like it"
    assert negate("A man is playing a guitar.") == "A man is not playing a guitar."
    assert negate("the cat is not on the mat") == "the cat is on the mat"
    assert negate("show me my bills") is None


class _Fake:
    calls = 0


def test_teacher_cache_encodes_each_text_once(tmp_path, monkeypatch) -> None:
    import service.object2vec.teacher as teacher

    def fake_encode(_teacher, texts, batch_size=128):
        _Fake.calls += 1
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    monkeypatch.setattr(teacher, "encode", fake_encode)
    cache = TeacherCache(tmp_path, None)
    first = cache(["ab", "abc"])
    again = TeacherCache(tmp_path, None)(["abc", "ab", "abcd"])
    assert _Fake.calls == 2
    assert np.allclose(again[:2], first[::-1])
    assert again[2, 0] == 4


def test_every_candidate_recipe_has_its_training_config_and_an_unknown_one_is_refused(tmp_path) -> None:
    repo = Path(__file__).resolve().parent.parent
    for name in RECIPES:
        config = json.loads((repo / "configs" / f"bundled-{name}.json").read_text())
        assert config["channels"]["train"] == f"../build/distill-{name}/train.jsonl"
        assert config["output_dir"] == f"../build/train-{name}-s0"
    with pytest.raises(ValueError, match="pooled-perturbed, pooled-ensemble"):
        build_recipe(tmp_path, "pooled-v9")
    assert not list(tmp_path.iterdir())
