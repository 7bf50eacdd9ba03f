"""Shift-test limits stored in a model card: taken only for the very scores and settings they were simulated on, and
the bundled card's are the ones its scores give under the default settings."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from service.drift.baseline import CALIBRATIONS, card_baseline, card_calibrations
from service.drift.config import DriftConfig
from service.drift.shift import ShiftParams
from service.settings import DEFAULT_MODEL_DIR, Settings

PARAMS = ShiftParams(
    window=200, horizon=1000, false_alarm=0.05, warning_false_alarm=0.2, simulations=300, clip=4.0,
    min_samples=50, check_every=10, confirm=2,
)  # fmt: skip


def card_of(scores: np.ndarray, calibrations: Any = None) -> dict[str, Any]:
    dist: dict[str, Any] = {"scores": [round(float(s), 5) for s in scores]}
    if calibrations is not None:
        dist[CALIBRATIONS] = calibrations
    return {"name": "tiny", "created": "2026-12-08T00:00:00Z", "validation_score_distribution": dist}


def stored(scores: np.ndarray, params: ShiftParams, warning: float, drift: float) -> list[dict[str, Any]]:
    """The card entry for `scores` under `params`, its limits replaced: a test that gets them back took them."""
    config = replace(DriftConfig.from_settings(Settings()), shift=params)
    [entry] = card_calibrations(card_of(scores), config)
    return [{**entry, "warning": warning, "drift": drift}]


def limits(card: dict[str, Any], params: ShiftParams) -> tuple[float, float]:
    baseline = card_baseline(card, 10)
    assert baseline is not None
    test = baseline.shift_test(params)
    return test.warning, test.drift


def test_the_bundled_card_carries_the_limits_its_scores_give_under_the_default_settings() -> None:
    card = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text())
    fresh = card_calibrations(card, DriftConfig.from_settings(Settings()))
    assert fresh and card["validation_score_distribution"][CALIBRATIONS] == fresh, (
        "the bundled card's shift_calibrations are stale: store card_calibrations(card, "
        "DriftConfig.from_settings(Settings())) under its validation_score_distribution (o2v export does)"
    )


def test_stored_limits_are_taken_for_the_same_scores_and_settings_only() -> None:
    scores = np.random.default_rng(3).uniform(0.1, 0.9, 400)
    simulated = limits(card_of(scores), PARAMS)
    assert simulated[0] < simulated[1]
    entries = stored(scores, PARAMS, 1.5, 2.5)
    assert limits(card_of(scores, entries), PARAMS) == (1.5, 2.5)

    other_settings = replace(PARAMS, simulations=400)
    assert limits(card_of(scores, entries), other_settings) == limits(card_of(scores), other_settings)
    moved = scores.copy()
    moved[0] += 0.01
    assert limits(card_of(moved, entries), PARAMS) == limits(card_of(moved), PARAMS)


MALFORMED: dict[str, Any] = {
    "not a list": lambda entry: "3.2, 4.0",
    "not objects": lambda entry: [None, 3],
    "params as text": lambda entry: [{**entry, "params": "window=200"}],
    "a negative limit": lambda entry: [{**entry, "warning": -1.0}],
    "a limit as text": lambda entry: [{**entry, "drift": "2.5"}],
    "a limit missing": lambda entry: [{k: v for k, v in entry.items() if k != "drift"}],
    "no digest": lambda entry: [{k: v for k, v in entry.items() if k != "scores_sha256"}],
}
"""Card entries spoilt from a valid one whose limits are (1.5, 2.5)."""


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_entry_is_simulated_afresh(case: str) -> None:
    scores = np.random.default_rng(4).uniform(0.1, 0.9, 300)
    entries = MALFORMED[case](stored(scores, PARAMS, 1.5, 2.5)[0])
    assert limits(card_of(scores, entries), PARAMS) == limits(card_of(scores), PARAMS) != (1.5, 2.5)
