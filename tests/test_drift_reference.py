"""The shift test's growing reference: live scores that passed through the recent window while the stream stayed `ok`
join the baseline's ψ mean, so a monitor that watched normal traffic is not limited by the card's sampling error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.drift.report import render_html
from service.drift.shift import Settled, ShiftParams, calibrate
from service.drift.stream import ScoreStream
from tests.drift_fixtures import config, feed, monitor
from tests.test_drift_shift import PARAMS, bimodal

GROWING = ShiftParams(**{**PARAMS.__dict__, "reference_max": 10_000})


def card_of(scores: np.ndarray) -> dict[str, object]:
    scores_list = scores.tolist()
    return {"name": "m", "created": "2026-01-01T00:00:00Z", "validation_score_distribution": {"scores": scores_list}}


def test_between_numbers_scores_by_the_running_total_across_evictions() -> None:
    s = ScoreStream("x", window=5, bucket_seconds=60, buckets=2)
    s.record([float(i) for i in range(8)], now=0.0)  # 0..7 recorded, 3..7 still in the window
    assert s.between(0, 5).tolist() == [3.0, 4.0]
    assert s.between(4, 100).tolist() == [4.0, 5.0, 6.0, 7.0]
    assert s.between(6, 6).size == 0
    s.take_first(2)  # 3 and 4 leave; the numbers of the others stay
    assert s.between(0, 7).tolist() == [5.0, 6.0]


def test_thresholds_hold_the_false_alarm_rate_with_a_growing_reference() -> None:
    """As `test_thresholds_hold_the_false_alarm_rate_on_fresh_baseline_draws`, with each run's scores joining the
    reference once they leave the window (the monitor's schedule): still about `false_alarm` of runs raised."""
    p = GROWING
    checks = np.arange(p.min_samples, p.horizon + 1, p.check_every)
    alarms, runs = 0, 120
    for seed in range(runs):
        test = calibrate(bimodal(1000, seed=1000 + seed), p)
        live = bimodal(p.horizon, seed=5000 + seed)
        z = []
        for k in checks:
            old = live[: max(k - p.window, 0)]
            settled = Settled().add(test.psi_of(old))
            z.append(abs(test.statistic(live[:k], settled)))
        za = np.array(z)
        alarms += bool(np.any((za[1:] >= test.drift) & (za[:-1] >= test.drift)))
    sd = np.sqrt(p.false_alarm * (1 - p.false_alarm) / runs)
    assert alarms / runs <= p.false_alarm + 3 * sd


def test_settled_reference_moves_towards_the_traffic_it_watched() -> None:
    """A card that sits a little above the true distribution (0.015: normal traffic at z ≈ −1.5, no alarm) keeps
    normal traffic off centre with a fixed reference; a growing one takes the watched traffic in and centres it."""
    card = card_of(bimodal(300, seed=1, shift=0.015))
    zs = {}
    for label, reference_max in (("fixed", 0), ("growing", 20_000)):
        m = monitor(config=config(window=1000, check_every=25, shift_reference_max=reference_max), model_card=card)
        seen = feed(m, "similarity", bimodal(6000, seed=2).tolist())
        assert "drift" not in seen
        report = m.stream_report("similarity")
        zs[label] = report["statistics"]["shift_z"]["value"]
        assert (report["n_settled"] > 4000) if reference_max else report["n_settled"] == 0
    assert abs(zs["growing"]) < abs(zs["fixed"]) / 2


def test_a_warning_or_drift_keeps_the_scores_around_it_out_of_the_reference() -> None:
    card = card_of(bimodal(1500, seed=3))
    m = monitor(config=config(window=1000, check_every=25), model_card=card)
    feed(m, "similarity", bimodal(1500, seed=4).tolist())
    before = m.stream_report("similarity")["n_settled"]
    assert 900 <= before <= 1000  # 1,500 watched, the last 500 still in the shift test's window
    seen = feed(m, "similarity", bimodal(1500, seed=5, shift=0.2).tolist())
    assert "drift" in seen
    after = m.stream_report("similarity")["n_settled"]
    assert after - before <= 100  # at most the normal scores that left the window before the first warning


def test_reference_max_caps_what_is_absorbed_and_the_report_says_what_the_reference_holds() -> None:
    card = card_of(bimodal(1500, seed=3))
    m = monitor(config=config(window=1000, check_every=25, shift_reference_max=700), model_card=card)
    feed(m, "similarity", bimodal(3000, seed=6).tolist())
    assert m.stream_report("similarity")["n_settled"] == 700
    assert "reference: 1500 baseline scores + 700 live scores" in render_html(m.report())


def test_settled_reference_survives_a_restart_and_resets_with_a_new_baseline(tmp_path: Path) -> None:
    card = card_of(bimodal(1500, seed=3))
    c = config(window=1000, check_every=25)
    m = monitor(tmp_path, config=c, model_card=card)
    feed(m, "similarity", bimodal(2000, seed=7).tolist())
    report = m.stream_report("similarity")
    m.close()
    again = monitor(tmp_path, config=c, model_card=card)
    restored = again.stream_report("similarity")
    assert restored["n_settled"] == report["n_settled"] == 1500
    assert restored["statistics"]["shift_z"]["value"] == report["statistics"]["shift_z"]["value"]
    again.set_baseline("similarity", bimodal(800, seed=8).tolist(), "upload")
    assert again.stream_report("similarity")["n_settled"] == 0
    feed(again, "similarity", bimodal(700, seed=9).tolist())
    assert again.stream_report("similarity")["n_settled"] == 200  # only scores after the new baseline
