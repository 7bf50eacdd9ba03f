"""Per-label drift of /classify: the label whose share and confidence moved comes first; others stay unflagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.drift.labels import NONE_LABEL, OTHER_LABEL, LabelMonitor
from tests.drift_fixtures import config, monitor

LABELS = ["billing", "shipping", "returns", "account"]


def answers(n: int, shares: list[float], confidence: dict[str, float], seed: int) -> list[tuple[str, float]]:
    rng = np.random.default_rng(seed)
    picked = rng.choice(LABELS, n, p=shares)
    return [(str(label), float(np.clip(rng.normal(confidence[label], 0.05), 0, 1))) for label in picked]


def test_the_label_that_moved_is_ranked_first() -> None:
    m = monitor(config=config(window=400, learn_warmup=10, learn_size=300))
    normal = {label: 0.8 for label in LABELS}
    for label, conf in answers(310, [0.25] * 4, normal, seed=1):
        m.record_label(label, conf)
    # a new intent the vote maps onto "returns": its share rises and its confidence falls
    for label, conf in answers(300, [0.2, 0.2, 0.4, 0.2], {**normal, "returns": 0.6}, seed=2):
        m.record_label(label, conf)
    ranked = m.stream_report("classify_confidence")["labels"]
    assert ranked["reference"]["n"] == 300 and ranked["n_live"] == 300
    first, *rest = ranked["labels"]
    assert first["label"] == "returns" and first["moved"]
    assert first["share_live"] > first["share_reference"] and first["confidence_live"] < first["confidence_reference"]
    assert not any(r["moved"] for r in rest)


def test_unchanged_answers_flag_no_label_and_labels_are_bounded() -> None:
    lm = LabelMonitor(window=300, warmup=0, size=300, max_labels=3, min_count=20, alpha=0.01)
    for label, conf in answers(600, [0.25] * 4, {label: 0.8 for label in LABELS}, seed=3):
        lm.record(label, conf)
    lm.record(None, 0.1)
    rows = lm.ranking()["labels"]
    assert not any(r["moved"] for r in rows)
    names = {r["label"] for r in rows}
    assert len(names - {OTHER_LABEL, NONE_LABEL}) == 3 and {OTHER_LABEL, NONE_LABEL} <= names


def test_labels_survive_a_restart(tmp_path: Path) -> None:
    m = monitor(tmp_path, config=config(window=400, learn_warmup=0, learn_size=50))
    for label, conf in answers(120, [0.25] * 4, {label: 0.8 for label in LABELS}, seed=4):
        m.record_label(label, conf)
    before = m.stream_report("classify_confidence")["labels"]
    m.close()
    assert (
        monitor(tmp_path, config=config(window=400, learn_warmup=0, learn_size=50)).stream_report(
            "classify_confidence"
        )["labels"]
        == before
    )


def test_moved_follows_the_label_alpha_setting_not_the_ks_drift_gate() -> None:
    normal = {label: 0.8 for label in LABELS}
    moved = {}
    for alpha, gate in ((0.5, 1e-300), (1e-300, 0.5)):
        m = monitor(config=config(window=400, learn_warmup=10, learn_size=300, label_alpha=alpha, ks_pvalue_drift=gate))
        for label, conf in answers(310, [0.25] * 4, normal, seed=1):
            m.record_label(label, conf)
        for label, conf in answers(300, [0.2, 0.2, 0.4, 0.2], {**normal, "returns": 0.6}, seed=2):
            m.record_label(label, conf)
        rows = m.stream_report("classify_confidence")["labels"]["labels"]
        moved[alpha] = {r["label"] for r in rows if r["moved"]}
    assert "returns" in moved[0.5] and not moved[1e-300]
