"""Headless load test: the service on a free loopback port with its collections loaded, locust's callers against it.

    python -m loadtests.run --users 8 --spawn-rate 4 --duration 30 --out build/loadtest/mix
    python -m loadtests.run --phases 64:30,4:20 --spawn-rate 64 --think-scale 0 --weights bulk=1 --batch 64 \
        --max-failure-ratio 1 --out build/loadtest/overload        # past saturation, then back under it

It starts `o2v serve` (the bundled model unless O2V_MODEL_DIR names another; O2V_* settings pass through; a
temporary data directory), creates and fills the intents and reviews collections over HTTP, runs locust headless
on loadtests/locustfile.py while sampling the server's resident memory, then probes every route a few times to see
that the service answers 200 again. In --out: locust's CSV and HTML reports, locust.log, phases.json and
summary.json. It prints a table per route and per phase and then one JSON line, and exits 1 when an SLO is broken:
failures (503s included) above --max-failure-ratio of all requests, a p99 above --max-p99-ms, or a probe after
the load that did not answer 200. Load goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench.tables import print_table
from loadtests.plan import DEFAULT_WEIGHTS, SHED, load_collections, phases
from loadtests.pools import Pools, load

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"  # locust loads it by path
REPO = LOCUSTFILE.parent.parent
MIB = 1 << 20
LOAD_ROUTES = ("/collections/{name}/classify", "/collections/{name}/search", "/v1/embeddings", "/similarity")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--users", type=int, default=4, help="concurrent users (one phase; see --phases)")
    p.add_argument("--spawn-rate", type=float, default=4.0, help="users started (or stopped) per second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load (one phase)")
    p.add_argument("--phases", default="", help="USERS:SECONDS,... e.g. 64:30,4:20 (overrides --users/--duration)")
    p.add_argument("--weights", default="", help="caller mix, e.g. intent=4,search=3,bulk=1,pairs=2 (0 = left out)")
    p.add_argument("--think-scale", type=float, default=1.0, help="times each caller's think time; 0 = back to back")
    p.add_argument("--batch", type=int, default=32, help="texts per bulk /v1/embeddings request")
    p.add_argument("--shared-data", help="build the text pools from the public datasets in this folder")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the server")
    p.add_argument("--out", default="build/loadtest", help="folder for the reports")
    p.add_argument("--max-failure-ratio", type=float, default=0.01, help="SLO: failed / all requests, 503s included")
    p.add_argument("--max-p99-ms", type=float, default=1000.0, help="SLO: p99 of all requests")
    p.add_argument("--probes", type=int, default=5, help="requests per route after the load, each must answer 200")


class MemorySampler:
    """Resident memory of a process and its children (uvicorn's workers), sampled on a thread until stopped."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.every_s = every_s
        self.samples: list[tuple[float, int]] = []  # (time.time(), bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sum(self, read: Callable[[Any], float]) -> float:
        import psutil

        total = 0.0
        for proc in (self.process, *self.process.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess):  # a worker that exited between the two calls
                total += read(proc)
        return total

    def rss(self) -> int:
        return int(self._sum(lambda p: p.memory_info().rss))

    def cpu_s(self) -> float:
        return self._sum(lambda p: sum(p.cpu_times()[:2]))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.rss()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> MemorySampler:
        self.cpu_used = -self.cpu_s()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_used += self.cpu_s()

    def peak_mib(self, start: float = 0.0, end: float = math.inf) -> float | None:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return round(max(inside) / MIB, 1) if inside else None


def probe(http: Any, pools: Pools, names: dict[str, str], repeats: int) -> dict[str, Any]:
    """Each route `repeats` times, one request at a time: after the load every answer must be 200."""
    calls = [
        (f"/collections/{names['intents']}/classify", {"text": pools.intent_queries[0]}),
        (f"/collections/{names['reviews']}/search", {"query": pools.review_queries[0], "top_k": 5}),
        ("/v1/embeddings", {"input": pools.sentences[:8]}),
        ("/similarity", {"pairs": pools.pairs[:2]}),
    ]
    statuses, times = [], []
    for _ in range(repeats):
        for path, body in calls:
            started = time.perf_counter()
            statuses.append(http.post(path, json=body).status_code)
            times.append((time.perf_counter() - started) * 1000)
    ok = statuses.count(200)
    return {"requests": len(statuses), "ok": ok, "max_ms": round(max(times), 1), "recovered": ok == len(statuses)}


def server_side(http: Any) -> dict[str, dict[str, float]]:
    """The callers' routes' answers by status as the server itself counted and timed them (its /metrics): checks
    the client's 503 count, and the mean time separates the server's speed from the load generator's CPU share."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        if family.name == "o2v_http_request_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith(("_count", "_sum")) and sample.labels["route"] in LOAD_ROUTES:
                    count_sum = sums.setdefault(sample.labels["status"], [0.0, 0.0])
                    count_sum[sample.name.endswith("_sum")] += sample.value
    return {s: {"count": int(c), "mean_ms": round(1000 * t / c, 1) if c else 0.0} for s, (c, t) in sums.items()}


def _number(value: str) -> float | None:
    return None if value in ("", "N/A") else round(float(value), 1)


def read_stats(prefix: Path) -> dict[str, dict[str, Any]]:
    """Locust's {prefix}_stats.csv and _failures.csv as {route or "Aggregated": numbers, 503s included}."""
    shed: dict[str, int] = {}
    with open(f"{prefix}_failures.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if SHED in row["Error"]:
                shed[row["Name"]] = shed.get(row["Name"], 0) + int(row["Occurrences"])
    routes = {}
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["Name"]
            routes[name] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "shed_503": sum(shed.values()) if name == "Aggregated" else shed.get(name, 0),
                "rps": _number(row["Requests/s"]),
                "p50_ms": _number(row["50%"]),
                "p95_ms": _number(row["95%"]),
                "p99_ms": _number(row["99%"]),
                "max_ms": _number(row["Max Response Time"]),
            }
    return routes


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children: around locust's run, locust's own."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_locust(args: argparse.Namespace, url: str, out: Path, plan: str, names: dict[str, str]) -> None:
    """Locust headless in a child process (its gevent patching stays there) in the repository root, where the
    locustfile finds this package; Ctrl-C stops it and is re-raised."""
    out = out.resolve()
    command = [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url),
        *("-r", str(args.spawn_rate), "--csv", str(out / "locust"), "--html", str(out / "locust.html")),
        *("--loglevel", "WARNING", "--only-summary", "--exit-code-on-error", "0"),
        *("--o2v-phases", plan, "--o2v-phase-report", str(out / "phases.json"), "--o2v-weights", args.weights),
        *("--o2v-think-scale", str(args.think_scale), "--o2v-batch", str(args.batch)),
        *("--o2v-intents", names["intents"], "--o2v-reviews", names["reviews"]),
        *("--o2v-shared-data", args.shared_data or ""),
    ]
    with open(out / "locust.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)  # locust writes its reports on the way out
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if code != 0:
        tail = (out / "locust.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"locust exited with {code}; the end of {out / 'locust.log'}:\n{tail}")


def slo(total: dict[str, Any], after: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    broken = []
    ratio = total["failures"] / total["requests"] if total["requests"] else 1.0
    if ratio > args.max_failure_ratio:
        broken.append(f"failure ratio {ratio:.4f} > {args.max_failure_ratio}")
    if total["p99_ms"] is None or total["p99_ms"] > args.max_p99_ms:
        broken.append(f"p99 {total['p99_ms']} ms > {args.max_p99_ms} ms")
    if not after["recovered"]:
        broken.append(f"{after['requests'] - after['ok']} of {after['requests']} probes after the load were not 200")
    limits = {"max_failure_ratio": args.max_failure_ratio, "max_p99_ms": args.max_p99_ms}
    return {**limits, "failure_ratio": round(ratio, 4), "ok": not broken, "broken": broken}


def report(summary: dict[str, Any]) -> None:
    routes = [{"route": name, **numbers} for name, numbers in summary["routes"].items()]
    columns = ["requests", "rps", "failures", "shed_503", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    print_table(routes, [("route", "route"), *((c, c) for c in columns)])
    if len(summary["phases"]) > 1:
        print()
        columns = ["users", "seconds", "requests", "rps", "failures", "shed_503", "shed_ratio", "p99_ms"]
        columns += ["ok_p99_ms", "shed_p99_ms", "last_failure_s", "peak_rss_mib"]
        print_table(summary["phases"], [("phase", "phase"), *((c, c) for c in columns)])
    rss, after, verdict = summary["rss_mib"], summary["after"], summary["slo"]
    outcome = "met" if verdict["ok"] else "broken: " + "; ".join(verdict["broken"])
    shed = summary["server"].get("503", {"count": 0, "mean_ms": 0.0})
    cpu = summary["cpu_s"]
    print(
        f"\nCPU seconds over {cpu['wall']} s: server {cpu['server']}, locust {cpu['locust']}; "
        f"server RSS {rss['before']} MiB before the load, peak {rss['peak']} MiB; the server answered "
        f"{shed['count']} 503s (mean {shed['mean_ms']} ms in the server); after the load "
        f"{after['ok']}/{after['requests']} probes answered 200 (slowest {after['max_ms']} ms); SLO {outcome}"
    )
    print(json.dumps(summary))


def run(args: argparse.Namespace) -> int:
    """The whole load test; 0 when every SLO holds, 1 when one is broken, 130 when interrupted."""
    import httpx

    from tests.server_process import ServerProcess

    plan = phases(args.phases, args.users, args.duration)
    spec = ",".join(f"{u}:{s:g}" for u, s in plan)
    if any(math.isinf(s) for _, s in plan):
        raise ValueError("every phase needs a duration")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = {"intents": "intents", "reviews": "reviews"}
    pools = load(args.shared_data)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)  # SIGTERM stops the server as cleanly as Ctrl-C
    try:
        with (
            tempfile.TemporaryDirectory(prefix="o2v-loadtest-") as data_dir,
            ServerProcess({"O2V_DATA_DIR": data_dir}, args=("--workers", str(args.workers))) as server,
            httpx.Client(base_url=server.url, timeout=120) as http,
        ):
            collections = load_collections(http, pools, names)
            sampler = MemorySampler(server.process.pid)  # type: ignore[union-attr]
            before = round(sampler.rss() / MIB, 1)
            locust_cpu = -_children_cpu_s()
            started = time.perf_counter()
            with sampler:
                run_locust(args, server.url, out, spec, names)
            wall, locust_cpu = time.perf_counter() - started, locust_cpu + _children_cpu_s()
            after = probe(http, pools, names, args.probes)
            by_status = server_side(http)
    except KeyboardInterrupt:
        print("interrupted: the server was stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    routes = read_stats(out / "locust")
    total = routes.pop("Aggregated")
    phase_rows = json.loads((out / "phases.json").read_text())["phases"]
    for row in phase_rows:
        row["peak_rss_mib"] = sampler.peak_mib(row["started_at"], row["started_at"] + row["seconds"])
    summary = {
        "phases_spec": spec,
        "weights": args.weights or ",".join(f"{k}={v}" for k, v in DEFAULT_WEIGHTS.items()),
        "think_scale": args.think_scale,
        "batch": args.batch,
        "workers": args.workers,
        "pools": "shared" if args.shared_data else "fixtures",
        "collections": collections,
        "routes": routes,
        "total": total,
        "phases": phase_rows,
        "rss_mib": {"before": before, "peak": sampler.peak_mib()},
        "cpu_s": {"wall": round(wall, 1), "server": round(sampler.cpu_used, 1), "locust": round(locust_cpu, 1)},
        "server": by_status,
        "after": after,
        "slo": slo(total, after, args),
        "out": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    report(summary)
    return 0 if summary["slo"]["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__.split("\n\n")[0])
    configure(parser)
    return run(parser.parse_args(argv))
