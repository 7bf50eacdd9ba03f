"""Drift-monitor benchmark: false alarms and samples-to-drift simulated from the served model's validation scores.

    python -m bench.drift                  # simulations + the real case with the served model (O2V_MODEL_DIR)
    python -m bench.drift --quick          # fewer runs, for a smoke test
    python -m bench.drift --scores FILE    # simulate from other baseline scores (any `o2v drift baseline` file)

The served model's validation scores stand for the model's true score distribution through a kernel density
estimate (resample a validation score, add Gaussian noise of Silverman's bandwidth, clip to [-1, 1]). Each
simulated run draws its own baseline (as many scores as the card has) and its own live traffic from it, both
independently: in production the validation set and live traffic are two samples of one distribution, and drawing
live scores from the baseline's own values would hide the baseline's sampling error and flatter the false-alarm
rate. A shift δ adds δ to every live score (then clips). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from service.drift import DriftConfig, DriftMonitor
from service.drift.baseline import Baseline, card_baseline
from service.drift.config import LEVELS
from service.drift.files import read_baseline_file
from service.drift.stats import compare
from service.drift.status import level
from service.encoders.model_dir import ModelDir
from service.settings import Settings

Sampler = Callable[[int, float], np.ndarray]
SHIFTS = (-0.1, -0.05, -0.02, 0.02, 0.05, 0.1)
STREAM = "similarity"


def kde_sampler(validation: np.ndarray, rng: np.random.Generator) -> Sampler:
    iqr = float(np.subtract(*np.percentile(validation, [75, 25])))
    bandwidth = 0.9 * min(float(validation.std()), iqr / 1.34) * validation.size ** (-0.2)

    def sample(n: int, shift: float = 0.0) -> np.ndarray:
        x = rng.choice(validation, n) + rng.normal(0.0, bandwidth, n) + shift
        return np.clip(x, -1.0, 1.0)

    return sample


def fresh_monitor(config: DriftConfig, sample: Sampler, n_baseline: int) -> DriftMonitor:
    """A monitor whose card baseline is a new draw of `n_baseline` scores."""
    card = {"name": "bench", "validation_score_distribution": {"scores": sample(n_baseline, 0.0).tolist()}}
    return DriftMonitor(config, card)


def window_false_alarms(config: DriftConfig, sample: Sampler, n_baseline: int, windows: int) -> dict[str, Any]:
    """The raw verdict of one check on independent (baseline, window) draws, at the smallest and the full size."""
    out = {}
    for size in (config.min_samples, config.window):
        levels = []
        for _ in range(windows):
            b = Baseline.of(sample(n_baseline, 0.0), "bench", config.psi_bins)
            levels.append(level(compare(b.scores, sample(size, 0.0), b.edges), config.limits))
        out[str(size)] = {name: levels.count(i) / windows for i, name in enumerate(LEVELS) if name != "ok"}
    return out


def feed_until(monitor: DriftMonitor, sample: Sampler, shift: float, cap: int) -> tuple[int | None, list[str]]:
    """Feed `check_every` scores at a time, checking after each; samples until the first `drift`, and statuses."""
    step, fed, seen = monitor.config.check_every, 0, []
    while fed < cap:
        monitor.record_many(STREAM, sample(step, shift))
        fed += step
        monitor.run_due_checks()
        seen.append(monitor.stream_report(STREAM)["status"])
        if shift and seen[-1] == "drift":
            return fed, seen
    return None, seen


def sequential_false_alarms(
    config: DriftConfig, sample: Sampler, n_baseline: int, runs: int, length: int
) -> dict[str, float]:
    """Long runs of baseline-like traffic through the monitor: share of checks in drift, and of runs ever in drift."""
    checks = drift = warning = ever = 0
    for _ in range(runs):
        _, seen = feed_until(fresh_monitor(config, sample, n_baseline), sample, 0.0, length)
        checks += len(seen)
        drift += seen.count("drift")
        warning += seen.count("warning")
        ever += "drift" in seen
    return {"checks_drift": drift / checks, "checks_warning": warning / checks, "runs_ever_drift": ever / runs}


def samples_to_drift(
    config: DriftConfig, sample: Sampler, n_baseline: int, shift: float, runs: int, cap: int, prefill: bool
) -> dict[str, Any]:
    """Samples after the shift starts until status `drift`: from an empty window, or after a full normal window."""
    found = []
    for _ in range(runs):
        monitor = fresh_monitor(config, sample, n_baseline)
        if prefill:
            feed_until(monitor, sample, 0.0, config.window)
        n, _ = feed_until(monitor, sample, shift, cap)
        found.append(n)
    hits = sorted(n for n in found if n is not None)
    return {
        "median": float(np.median(hits)) if len(hits) * 2 > runs else None,  # undefined when most runs never detect
        "p90": float(np.percentile(hits, 90)) if len(hits) * 10 >= runs * 9 else None,
        "within_500": sum(n <= 500 for n in hits) / runs,
        "detected": len(hits) / runs,
    }


# the real case: text pairs through the served encoder
LOG_EVENTS = [
    ("kafka.consumer", "offset commit failed for partition {n} of topic {t}: CommitFailedException"),
    ("kafka.consumer", "rebalance triggered, revoking partitions [{n}, {m}] of topic {t}"),
    ("nginx", 'upstream timed out (110) while reading response header, upstream "http://10.0.{n}.{m}:8080/{t}"'),
    ("postgres", "deadlock detected: process {n} waits for ShareLock on transaction {m}"),
    ("kubelet", 'Back-off restarting failed container {t} in pod {t}-{n}-x{m}, reason "CrashLoopBackOff"'),
    ("sshd", "Failed password for invalid user {t} from 192.168.{n}.{m} port {n}{m} ssh2"),
    ("systemd", "{t}.service: Main process exited, code=exited, status={n}/FAILURE"),
    ("jvm", "java.lang.OutOfMemoryError: GC overhead limit exceeded at {t}.Worker.run(Worker.java:{n})"),
    ("redis", "MISCONF {t} is configured to save RDB snapshots, but it is currently not able to persist on disk"),
    ("cron", "({t}) CMD (/usr/local/bin/{t}-backup --retain {n}d --target s3://bk-{m}/{t})"),
]
LOG_WORDS = ["billing", "ingest", "auth", "search", "orders", "payments", "etl", "metrics", "mailer", "gateway"]


def log_line(rng: random.Random, event: int) -> str:
    source, template = LOG_EVENTS[event]
    stamp = f"2024-0{rng.randint(1, 9)}-{rng.randint(10, 28)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:07Z"
    body = template.format(n=rng.randint(1, 250), m=rng.randint(1000, 99999), t=rng.choice(LOG_WORDS))
    return f"{stamp} {rng.choice(['ERROR', 'WARN', 'INFO'])} [{source}] {body}"


def log_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Machine log lines, a domain absent from STS-B, CLINC150 and the review sentences: half the pairs report the
    same event (different ids and times), half two different events, as STS mixes related and unrelated pairs."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        a = rng.randrange(len(LOG_EVENTS))
        b = a if i % 2 == 0 else (a + rng.randrange(1, len(LOG_EVENTS))) % len(LOG_EVENTS)
        pairs.append((log_line(rng, a), log_line(rng, b)))
    return pairs


def sts_test_pairs(limit: int) -> list[tuple[str, str]]:
    """STS-B test: never trained on, never the validation channel, but the same domain: the in-domain control."""
    from service.datasets import read_sts

    return [(p.a, p.b) for p in read_sts("test")[:limit]]


def pair_cosines(encoder: Any, pairs: list[tuple[str, str]]) -> np.ndarray:
    from service.encoders.base import l2_normalize

    a = l2_normalize(encoder.embed_texts([p[0] for p in pairs]))
    b = l2_normalize(encoder.embed_texts([p[1] for p in pairs]))
    return np.sum(a * b, axis=1)


def verdict(config: DriftConfig, card: dict[str, Any], cosines: np.ndarray) -> dict[str, Any]:
    """Feed the cosines through a fresh monitor (card baseline) and report the final status and statistics."""
    monitor = DriftMonitor(config, card)
    first = None
    for i in range(0, cosines.size, config.check_every):
        monitor.record_many(STREAM, cosines[i : i + config.check_every].tolist())
        monitor.run_due_checks()
        if first is None and monitor.stream_report(STREAM)["status"] == "drift":
            first = i + config.check_every
    r = monitor.stream_report(STREAM)
    stats = {k: v["value"] for k, v in r["statistics"].items()}
    return {"n": int(cosines.size), "mean": r["live"].get("mean"), "status": r["status"], "drift_at": first, **stats}


def real_case(config: DriftConfig, settings: Settings, n: int) -> dict[str, Any]:
    from service.encoders import load_encoder

    encoder = load_encoder(settings)
    card = encoder.model.card
    cases = {"in_domain_sts_test": sts_test_pairs(n), "out_of_domain_logs": log_pairs(n)}
    return {name: verdict(config, card, pair_cosines(encoder, pairs)) for name, pairs in cases.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", help="baseline scores file instead of the served model's model_card.json")
    p.add_argument("--windows", type=int, default=1000, help="independent windows per size")
    p.add_argument("--runs", type=int, default=100, help="simulated runs per row")
    p.add_argument("--length", type=int, default=5000, help="scores per false-alarm run")
    p.add_argument("--real-pairs", type=int, default=1000, help="text pairs per real case (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="windows 100, runs 10, length 2000, 300 real pairs")
    args = p.parse_args()
    if args.quick:
        args.windows, args.runs, args.length, args.real_pairs = 100, 10, 2000, min(args.real_pairs, 300)
    logging.getLogger("service.drift").setLevel(logging.ERROR)
    settings = Settings()
    config = DriftConfig.from_settings(settings)
    card = ModelDir.load(settings.model_dir).card
    source = args.scores or str(Path(settings.model_dir) / "model_card.json")
    raw = read_baseline_file(args.scores)["scores"] if args.scores else None
    b = card_baseline({"validation_score_distribution": {"scores": raw}} if raw else card, config.psi_bins)
    if b is None:
        raise SystemExit(f"{source}: no validation scores to simulate from")
    validation, n = b.scores, b.scores.size
    sample = kde_sampler(validation, np.random.default_rng(args.seed))
    started = time.perf_counter()

    windows = window_false_alarms(config, sample, n, args.windows)
    sequential = sequential_false_alarms(config, sample, n, args.runs, args.length)
    detection = {}
    for shift in SHIFTS:
        detection[f"{shift:+g}"] = {
            "empty": samples_to_drift(config, sample, n, shift, args.runs, 3000, prefill=False),
            "after_window": samples_to_drift(config, sample, n, shift, args.runs, 3000, prefill=True),
        }
    real = real_case(config, settings, args.real_pairs) if args.real_pairs else {}
    seconds = time.perf_counter() - started

    print(f"validation scores: {source}  n={n} mean={validation.mean():.4f} std={validation.std():.4f}")
    print(f"config: {json.dumps(config.public()['thresholds'])}")
    print(
        f"window {config.window}, verdict from {config.min_samples}, check every {config.check_every}, "
        f"confirm {config.confirm_checks}, clear {config.clear_checks}, hysteresis {config.hysteresis}\n"
    )
    print("| false alarms (baseline-like traffic) | drift | warning |\n|---|---|---|")
    for size, rates in windows.items():
        print(
            f"| one check, {args.windows} independent windows of {size} | {rates['drift']:.2%} "
            f"| {rates['warning']:.2%} |"
        )
    print(
        f"| checks in `drift`, {args.runs} runs of {args.length} scores | {sequential['checks_drift']:.2%} | "
        f"{sequential['checks_warning']:.2%} |"
    )
    print(f"| runs ever in `drift` (same runs) | {sequential['runs_ever_drift']:.1%} | |\n")
    print(
        "| mean shift | samples to `drift` from empty: median / p90 | within 500 | after a full normal window: "
        "median | within 500 |\n|---|---|---|---|---|"
    )
    for shift, d in detection.items():
        e, a = d["empty"], d["after_window"]
        print(
            f"| {shift} | {_n(e['median'])} / {_n(e['p90'])} | {e['within_500']:.0%} | {_n(a['median'])} | "
            f"{a['within_500']:.0%} |"
        )
    if real:
        print(f"\nreal case, model {card.get('name')} (card created {card.get('created')}):")
        print(
            "| pairs | n | live mean | status | first drift at | KS p | L∞ | PSI | JS | W/σ |\n"
            "|---|---|---|---|---|---|---|---|---|---|"
        )
        for name, r in real.items():
            print(
                f"| {name} | {r['n']} | {r['mean']:.4f} | {r['status']} | {_n(r['drift_at'])} | {r['ks_pvalue']:.3g} | "
                f"{r['linf']:.3f} | {r['psi']:.3f} | {r['js']:.3f} | {r['wasserstein_norm']:.3f} |"
            )
    result = {
        "bench": "drift",
        "baseline": {
            "source": source,
            "n": int(n),
            "mean": float(validation.mean()),
            "std": float(validation.std()),
        },
        "config": config.public(),
        "false_alarms": {"windows": windows, "sequential": sequential},
        "detection": detection,
        "real": real,
        "seconds": round(seconds, 1),
    }
    print(json.dumps(result))
    return 0


def _n(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    sys.exit(main())
