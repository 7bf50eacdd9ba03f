"""Load-test benchmark: where the service saturates, how it behaves at 50 % and 150 % of that, and past its queue.

    python -m bench.loadtest                                      # about 7 minutes on the 2-core machine
    python -m bench.loadtest --phase-seconds 8 --run-seconds 10 --overload-seconds 10     # a quick look

Every step is `python -m loadtests.run` in a child process (a fresh `o2v serve` with the bundled model, locust on
the same machine):
1. sweep: the default caller mix back to back (think time 0), one phase per user count (1, 2, 4, … 64);
   saturation = the first user count whose doubling adds less than 10 % requests/s (past it, users add latency);
2. the same mix at 50 % and at 150 % of those users, --run-seconds each;
3. overload: bulk embedders only, 64 texts per request, OVERLOAD_USERS users (4× what fills the default
   1024-row queue, so 503s must appear) for --overload-seconds, then RECOVERY_USERS users for half as long, then
   the runner's probes: 503 ratio, p99 of answers and of 503s, peak memory, how fast 503s stop.
Writes every run's summary to bench/results/loadtest.json and prints one table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.tables import print_table

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SWEEP = (1, 2, 4, 8, 16, 32, 64)
OVERLOAD_USERS, RECOVERY_USERS, OVERLOAD_BATCH = 64, 4, 64
LAX = ["--max-failure-ratio", "1", "--max-p99-ms", "1000000"]  # a benchmark records; it does not judge


def run(name: str, out: Path, *argv: str) -> dict[str, Any]:
    """One load test, run as its own tool from the repository root: bench/ does not import loadtests/."""
    folder = (out / name).resolve()
    summary = folder / "summary.json"
    summary.unlink(missing_ok=True)
    command = [sys.executable, "-m", "loadtests.run", *argv, "--think-scale", "0", "--out", str(folder)]
    code = subprocess.run(command, cwd=REPO).returncode  # 1: an SLO broken, which a benchmark records, not judges
    if not summary.is_file():
        raise RuntimeError(f"python -m loadtests.run exited with {code} and wrote no {summary}")
    return json.loads(summary.read_text())


def saturation(phases: list[dict[str, Any]], gain: float = 1.1) -> int:
    """The first user count whose doubling adds less than 10 % requests/s: past it, users only add latency."""
    for now, doubled in itertools.pairwise(phases):
        if doubled["rps"] < gain * now["rps"]:
            return now["users"]
    return phases[-1]["users"]


def row(name: str, phase: dict[str, Any]) -> dict[str, Any]:
    """One phase of a run (a one-phase run is the whole run) as a table row."""
    keys = ("users", "requests", "rps", "failures", "shed_503", "shed_ratio", "p50_ms", "p99_ms", "ok_p99_ms")
    return {"run": name, **{k: phase[k] for k in (*keys, "shed_p99_ms", "last_failure_s", "peak_rss_mib")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-seconds", type=float, default=20.0, help="seconds per user count of the sweep")
    parser.add_argument("--run-seconds", type=float, default=30.0, help="seconds of the 50 %% and 150 %% runs")
    parser.add_argument("--overload-seconds", type=float, default=30.0, help="seconds past the queue's capacity")
    parser.add_argument("--out", default="build/loadtest", help="folder for each run's reports")
    args = parser.parse_args()
    out = Path(args.out)

    plan = ",".join(f"{users}:{args.phase_seconds:g}" for users in SWEEP)
    sweep = run("sweep", out, "--phases", plan, "--spawn-rate", "64", *LAX)
    users = saturation(sweep["phases"])
    half, more = max(1, round(users * 0.5)), round(users * 1.5)
    at_half = run("mix-50", out, "--users", str(half), "--spawn-rate", str(half), "--duration", str(args.run_seconds))
    at_more = run("mix-150", out, "--users", str(more), "--spawn-rate", str(more), "--duration", str(args.run_seconds))
    plan = f"{OVERLOAD_USERS}:{args.overload_seconds:g},{RECOVERY_USERS}:{args.overload_seconds / 2:g}"
    overload = run(
        "overload",
        out,
        *("--phases", plan, "--spawn-rate", str(OVERLOAD_USERS), "--weights", "intent=0,search=0,pairs=0,bulk=1"),
        *("--batch", str(OVERLOAD_BATCH), *LAX),
    )

    rows = [row(f"sweep {p['users']}", p) for p in sweep["phases"]]
    rows += [row("mix 50 %", at_half["phases"][0]), row("mix 150 %", at_more["phases"][0])]
    rows += [row(f"overload phase {p['phase']}", p) for p in overload["phases"]]
    print_table(rows, [(k, k) for k in rows[0]])
    record = {
        "saturation_users": users,
        "table": rows,
        "runs": {"sweep": sweep, "mix-50": at_half, "mix-150": at_more, "overload": overload},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loadtest.json").write_text(json.dumps(record, indent=1))
    print(json.dumps({k: record[k] for k in ("saturation_users", "table")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
