"""Drift-monitor benchmark: false alarms and samples-to-drift simulated from the served model's validation scores.

    python -m bench.drift                  # simulations + the real case with the served model (O2V_MODEL_DIR)
    python -m bench.drift --quick          # fewer runs, for a smoke test
    python -m bench.drift --scores FILE    # simulate from other baseline scores (any `o2v drift baseline` file)

The served model's validation scores stand for the model's true score distribution through a kernel density
estimate (resample a validation score, add Gaussian noise of Silverman's bandwidth, clip to [-1, 1]). Each
simulated run draws its own baseline (as many scores as the card has) and its own live traffic from it, both
independently: in production the validation set and live traffic are two samples of one distribution, and drawing
live scores from the baseline's own values would hide the baseline's sampling error and flatter the false-alarm
rate. A shift δ adds δ to every live score (then clips), from an empty window, after a full window of normal
traffic, or after `--long` normal scores. Every row runs three times, side by side, on the same draws:
`windows_only` is the KS/PSI/JS/Wasserstein window alone (the config's `shift=None`), `fixed_reference` adds the shift
test (service/drift/shift.py) with a reference that stays the baseline's (SHIFT_REFERENCE_MAX at 0),
`configured` is the current settings (by default the reference absorbs the scores of `ok` checks). A power bound
shows what an idealised efficient-score detector reaches at the card's reference size and at the sizes a growing
reference has when each shift starts (`power_bound`). The embedding case compares the MMD permutation test with a
centroid-distance one on windows of real embeddings. Prints a table, then one JSON line (also written to
bench/results/drift.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from service.drift import DriftConfig, DriftMonitor
from service.drift.baseline import Baseline, card_baseline
from service.drift.config import LEVELS
from service.drift.files import read_baseline_file
from service.drift.shift import ShiftParams, bandwidth, efficient_score
from service.model.model_dir import ModelDir
from service.settings import Settings

Sampler = Callable[[int, float], np.ndarray]
SHIFTS = (-0.1, -0.05, -0.02, 0.02, 0.05, 0.1)
BOUND_SHIFTS = (-0.05, 0.05)
STREAM = "similarity"
RESULTS = Path(__file__).parent / "results" / "drift.json"


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


def window_false_alarms(
    config: DriftConfig, sample: Sampler, n_baseline: int, windows: int, baselines: int
) -> dict[str, Any]:
    """The raw verdict of one check on (baseline, window) draws, at the smallest and the full size: `baselines`
    independent baselines (each calibrates its own shift test, so not one per window), `windows` windows in all."""
    monitor = DriftMonitor(config, {})
    out = {}
    for size in (config.min_samples, config.window):
        levels = []
        for i in range(windows):
            if i % max(1, windows // baselines) == 0:
                b = Baseline.of(sample(n_baseline, 0.0), "bench", config.psi_bins)
            levels.append(monitor.judge(b, sample(size, 0.0)).enter)
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
    config: DriftConfig, sample: Sampler, n_baseline: int, shift: float, runs: int, cap: int, prefill: int
) -> dict[str, Any]:
    """Samples after the shift starts until status `drift`, after `prefill` normal scores (0: from empty)."""
    found = []
    for _ in range(runs):
        monitor = fresh_monitor(config, sample, n_baseline)
        if prefill:
            feed_until(monitor, sample, 0.0, prefill)
        n, _ = feed_until(monitor, sample, shift, cap)
        found.append(n)
    hits = sorted(n for n in found if n is not None)
    return {
        "median": float(np.median(hits)) if len(hits) * 2 > runs else None,  # undefined when most runs never detect
        "p90": float(np.percentile(hits, 90)) if len(hits) * 10 >= runs * 9 else None,
        "within_500": sum(n <= 500 for n in hits) / runs,
        "detected": len(hits) / runs,
    }


def power_bound(
    p: ShiftParams,
    sample: Sampler,
    sizes: list[int],
    seed: int,
    baselines: int = 8,
    draws: int = 200_000,
) -> dict[str, Any]:
    """What an idealised detector reaches, so a miss of the 0.05 target can be told from a weak test: the change
    starts exactly at the start of one of the horizon's `horizon / window` disjoint blocks, one look per block at
    its end (no sliding window, no confirmation), with the efficient score of a baseline's density (shift.py: the
    locally most powerful statistic for a small shift), the true null's mean and sd known, and its limit set so
    that ≤ false_alarm of normal runs are ever raised. What is left is the reference's own sampling error (N
    scores, one draw shared by every block of a run): power ≈ P(|signal + noise| / √(1 + window/N) ≥ limit). Per
    reference size N (`sizes`, the first the card's, then exact), the share of shifted blocks caught, averaged over
    `baselines` draws of the card-sized baseline the statistic is built from. An idealisation, not a proof: the
    score function of the true density (no monitor knows it) lifts the signal by a few per cent."""
    rng = np.random.default_rng(seed)
    signals = []  # mean shift of ψ under each shift, in units of its sd over one window of live scores
    for _ in range(baselines):
        base = sample(sizes[0], 0.0)
        grid, psi, _ = efficient_score(base, bandwidth(base), p.clip)
        null = np.interp(sample(draws, 0.0), grid, psi)  # the oracle knows the true null: its mean and sd
        signals.append(
            {s: (float(np.interp(sample(draws, s), grid, psi).mean()) - null.mean()) / null.std() * np.sqrt(p.window)
             for s in BOUND_SHIFTS}
        )  # fmt: skip
    blocks, runs, out = max(1, p.horizon // p.window), draws, {}
    for size in (*sizes, None):
        ratio = 0.0 if size is None else p.window / size  # reference variance in units of a window's
        scale = np.sqrt(1.0 + ratio)
        ref = rng.normal(0.0, np.sqrt(ratio), runs)  # one reference per run: its error is shared by every block
        z = np.abs((rng.normal(0.0, 1.0, (runs, blocks)) - ref[:, None]) / scale).max(axis=1)
        limit = float(np.quantile(z, 1.0 - p.false_alarm))
        caught = {s: 0.0 for s in BOUND_SHIFTS}
        for signal in signals:
            ref = rng.normal(0.0, np.sqrt(ratio), runs)
            for s in BOUND_SHIFTS:
                hit = np.abs((signal[s] + rng.normal(0.0, 1.0, runs) - ref) / scale) >= limit
                caught[s] += float(hit.mean()) / len(signals)
        out["exact" if size is None else str(size)] = {"limit": limit, **{f"{s:+g}": v for s, v in caught.items()}}
    return {
        "signal": {f"{s:+g}": float(np.mean([g[s] for g in signals])) for s in BOUND_SHIFTS},
        "window": p.window,
        "blocks": blocks,
        "false_alarm": p.false_alarm,
        "by_n": out,
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
    from service.vectors import pair_cosines as cosines

    return cosines(encoder.embed_texts([p[0] for p in pairs]), encoder.embed_texts([p[1] for p in pairs]))


def verdict(config: DriftConfig, card: dict[str, Any], cosines: np.ndarray) -> dict[str, Any]:
    """Feed the cosines through a fresh monitor and report the final status, statistics and, where the baseline is
    not the card's (learn mode), the raw level against the card (`domain`)."""
    monitor = DriftMonitor(config, card)
    first = None
    for i in range(0, cosines.size, config.check_every):
        monitor.record_many(STREAM, cosines[i : i + config.check_every].tolist())
        monitor.run_due_checks()
        if first is None and monitor.stream_report(STREAM)["status"] == "drift":
            first = i + config.check_every
    r = monitor.stream_report(STREAM)
    stats = {k: v["value"] for k, v in r["statistics"].items()}
    domain = (r.get("domain") or {}).get("status")
    return {
        "n": int(cosines.size),
        "mean": r["live"].get("mean"),
        "status": r["status"],
        "domain": domain,
        "drift_at": first,
        **stats,
    }


def real_case(configs: dict[str, DriftConfig], settings: Settings, n: int) -> dict[str, Any]:
    """Text pairs through the served encoder: STS-B test (in domain) and machine logs (out of domain), with the
    card baseline and with O2V_DRIFT_BASELINE=learn (the stream's own first scores)."""
    from service.encoders import load_encoder

    encoder = load_encoder(settings)
    card = encoder.model.card
    cases = {"in_domain_sts_test": sts_test_pairs(n), "out_of_domain_logs": log_pairs(n)}
    cosines = {name: pair_cosines(encoder, pairs) for name, pairs in cases.items()}
    return {f"{name} ({label})": verdict(c, card, cosines[name]) for label, c in configs.items() for name in cases}


def embedding_case(settings: Settings, runs: int, size: int = 200, alpha: float = 0.01) -> dict[str, Any]:
    """The embedding test's choice: share of `runs` random live windows of `size` flagged at `alpha` by the MMD
    permutation test and by a centroid-distance permutation test, against the model dir's validation sample: STS-B
    dev sentences in random order (the null: must stay near alpha), 5 % and 10 % log lines mixed into them, and
    STS-B test sentences."""
    from service.datasets import read_sts
    from service.drift.embeddings import load_sample
    from service.drift.mmd import centroid_test, median_distance, mmd_test, unit_rows
    from service.encoders import load_encoder

    reference = load_sample(settings.model_dir)
    if reference is None:
        return {}
    encoder = load_encoder(settings)
    rng = np.random.default_rng(0)
    dev = unit_rows(encoder.embed_texts(sorted({p.a for p in read_sts("dev")})))
    logs = unit_rows(encoder.embed_texts([t for pair in log_pairs(size) for t in pair]))
    test = unit_rows(encoder.embed_texts([a for a, _ in sts_test_pairs(1500)]))
    bandwidth = median_distance(reference)

    def window(mix: float, pool: np.ndarray = dev) -> np.ndarray:
        k = round(mix * size)
        ours = pool[rng.choice(pool.shape[0], size - k, replace=False)]
        return np.concatenate([ours, logs[rng.choice(logs.shape[0], k)]])

    cases = {"dev (null)": lambda: window(0.0), "5% logs": lambda: window(0.05), "10% logs": lambda: window(0.1)}
    cases["STS-B test"] = lambda: window(0.0, test)
    out = {}
    for name, draw in cases.items():
        hits = {"mmd": 0, "centroid": 0}
        for i in range(runs):
            live = draw()
            hits["mmd"] += mmd_test(reference, live, bandwidth, 200, seed=i)[1] <= alpha
            hits["centroid"] += centroid_test(reference, live, 200, seed=i)[1] <= alpha
        out[name] = {k: v / runs for k, v in hits.items()}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", help="baseline scores file instead of the served model's model_card.json")
    p.add_argument("--windows", type=int, default=1000, help="independent windows per size")
    p.add_argument("--runs", type=int, default=100, help="simulated runs per row")
    p.add_argument("--length", type=int, default=5000, help="scores per false-alarm run")
    p.add_argument("--long", type=int, default=5000, help="normal scores before the shift in the last mode (0: skip)")
    p.add_argument("--false-alarm-runs", type=int, help="long normal runs for the false-alarm rows (default: --runs)")
    p.add_argument("--real-pairs", type=int, default=1000, help="text pairs per real case (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embedding-runs", type=int, default=50, help="live windows per embedding case (0: skip)")
    p.add_argument("--quick", action="store_true", help="windows 100, runs 10, length 2000, 300 real pairs")
    args = p.parse_args()
    if args.quick:
        args.windows, args.runs, args.length, args.real_pairs = 100, 10, 2000, min(args.real_pairs, 300)
        args.embedding_runs = min(args.embedding_runs, 20)
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
    started = time.perf_counter()

    configs = {
        "windows_only": replace(config, shift=None),
        "fixed_reference": replace(config, shift=config.shift and replace(config.shift, reference_max=0)),
        "configured": config,
    }
    modes = {"empty": 0, "after_window": config.window, **({"after_long": args.long} if args.long else {})}
    rows: dict[str, dict[str, Any]] = {}
    for label, c in configs.items():
        sample = kde_sampler(validation, np.random.default_rng(args.seed))  # the same draws for each: paired
        rows[label] = {
            "windows": window_false_alarms(c, sample, n, args.windows, args.runs),
            "sequential": sequential_false_alarms(c, sample, n, args.false_alarm_runs or args.runs, args.length),
            "detection": {
                f"{shift:+g}": {
                    mode: samples_to_drift(c, sample, n, shift, args.runs, 3000, prefill)
                    for mode, prefill in modes.items()
                }
                for shift in SHIFTS
            },
        }
    bound = {}
    if config.shift is not None:
        sizes = [n] + [n + max(0, prefill) for prefill in modes.values() if prefill]  # the reference at each start
        bound = power_bound(
            config.shift, kde_sampler(validation, np.random.default_rng(args.seed + 1)), sizes, args.seed
        )
    real = {}
    if args.real_pairs:
        real_configs = {"card baseline": config, "learned baseline": config_with(settings, drift_baseline="learn")}
        real = real_case(real_configs, settings, args.real_pairs)
    embeddings = embedding_case(settings, args.embedding_runs) if args.embedding_runs else {}
    seconds = time.perf_counter() - started

    print(f"validation scores: {source}  n={n} mean={validation.mean():.4f} std={validation.std():.4f}")
    print(f"thresholds: {json.dumps(config.public()['thresholds'])}; shift test: {config.public()['shift_test']}")
    print(
        f"window {config.window}, verdict from {config.min_samples}, check every {config.check_every}, "
        f"confirm {config.confirm_checks}, clear {config.clear_checks}, hysteresis {config.hysteresis}\n"
    )
    print(
        "| false alarms (baseline-like traffic) | "
        + " | ".join(f"{label}: drift | {label}: warning" for label in configs)
        + " |\n|---|"
        + "---|---|" * len(configs)
    )
    for size in rows["windows_only"]["windows"]:
        cells = [f"{rows[label]['windows'][size][lvl]:.2%}" for label in configs for lvl in ("drift", "warning")]
        print(f"| one check, {args.windows} windows of {size} | " + " | ".join(cells) + " |")
    fa_runs = args.false_alarm_runs or args.runs
    cells = [f"{rows[label]['sequential'][k]:.2%}" for label in configs for k in ("checks_drift", "checks_warning")]
    print(f"| checks in `drift`, {fa_runs} runs of {args.length} scores | " + " | ".join(cells) + " |")
    cells = [f"{rows[label]['sequential']['runs_ever_drift']:.1%} | " for label in configs]
    print("| runs ever in `drift` (same runs) | " + " | ".join(cells) + " |\n")
    befores = {"empty": "none", "after_window": f"{config.window} (a full window)", "after_long": f"{args.long}"}
    print(
        "samples from the shift's start to `drift`: median / p90 (share within 500)\n"
        "| mean shift | normal scores before it | " + " | ".join(configs) + " |\n|---|---|" + "---|" * len(configs)
    )
    for shift in rows["windows_only"]["detection"]:
        for mode in modes:
            cells = [_delay(rows[label]["detection"][shift][mode]) for label in configs]
            print(f"| {shift} | {befores[mode]} | " + " | ".join(cells) + " |")
    if bound:
        print(
            f"\npower bound (idealised: change at a block start, one look per {bound['window']}-score block, "
            f"{bound['blocks']} blocks a run, efficient score, <= {bound['false_alarm']:.1%} of normal runs raised), "
            "share caught within one block, by the reference's size (the card's, then as grown by each mode):"
        )
        print("| reference scores | limit abs z | -0.05 | +0.05 |\n|---|---|---|---|")
        for size, r in bound["by_n"].items():
            print(f"| {size} | {r['limit']:.2f} | {r['-0.05']:.1%} | {r['+0.05']:.1%} |")
    if real:
        print(f"\nreal case, model {card.get('name')} (card created {card.get('created')}):")
        print(
            "| pairs (baseline, tests) | n | live mean | status | vs card | first drift at | KS p | L∞ | W/σ | "
            "shift z |\n|---|---|---|---|---|---|---|---|---|---|"
        )
        for name, r in real.items():
            ks = f"{r['ks_pvalue']:.3g}" if "ks_pvalue" in r else "-"
            print(
                f"| {name} | {r['n']} | {r['mean']:.4f} | {r['status']} | {r['domain'] or '-'} | {_n(r['drift_at'])} "
                f"| {ks} | {_f(r.get('linf'))} | {_f(r.get('wasserstein_norm'))} | {_f(r.get('shift_z'))} |"
            )
    if embeddings:
        print(f"\nembedding drift, share of {args.embedding_runs} live windows of 200 flagged at p <= 0.01:")
        print("| live embeddings | MMD (Gaussian kernel, permutations) | centroid distance (permutations) |")
        print("|---|---|---|")
        for name, r in embeddings.items():
            print(f"| {name} | {r['mmd']:.0%} | {r['centroid']:.0%} |")
    result = {
        "bench": "drift",
        "baseline": {
            "source": source,
            "n": int(n),
            "mean": float(validation.mean()),
            "std": float(validation.std()),
        },
        "config": config.public(),
        "runs": args.runs,
        "false_alarm_runs": args.false_alarm_runs or args.runs,
        **rows,
        "power_bound": bound,
        "real": real,
        "embeddings": embeddings,
        "seconds": round(seconds, 1),
    }
    line = json.dumps(result)
    print(line)
    RESULTS.write_text(line + "\n")
    return 0


def config_with(settings: Settings, **overrides: Any) -> DriftConfig:
    return DriftConfig.from_settings(settings.updated(**overrides))


def _delay(d: dict[str, Any]) -> str:
    return f"{_n(d['median'])} / {_n(d['p90'])} ({d['within_500']:.0%})"


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _n(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    sys.exit(main())
