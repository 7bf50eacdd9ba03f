"""The pooled-v2 distillation helpers that need no teacher: negated copies and the teacher-embedding cache."""

from __future__ import annotations

import numpy as np

from service.object2vec.teacher import TeacherCache, negate


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
