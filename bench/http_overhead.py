"""HTTP overhead benchmark: sentences/s of the in-process encoder vs POST /v1/embeddings on a real uvicorn server.

    python -m bench.http_overhead                 # batch 1, 16, 64; 3 rounds of 2 s per side; 8 HTTP clients
    python -m bench.http_overhead --seconds 1 --rounds 1 --concurrency 4 --encoding base64

Both sides run in one go on the same machine with the same settings (O2V_* from the environment), taking turns
round by round, in an order that rotates every round, so that load from other processes weighs on all alike. Rates
and CPU times are the medians of their rounds; a ratio is the median of the per-round ratios, with their spread
(quartiles, and lowest–highest) beside it; the load average (1-minute, sampled every round) heads the table and is
in the JSON line. On a loaded machine single rounds swing by 2× or more: use more rounds (--rounds 9).
In-process is tokenize + encoder + L2 normalisation, called back to back from one thread (onnxruntime uses every
core itself); HTTP is `o2v serve` in a child process answering clients that keep `--concurrency` requests in
flight over keep-alive connections (the clients share the machine's cores with the server: their CPU is
reported too). Sentences: the STS-B dev set read from the shared data folder. Target: HTTP ≥ 0.6× in-process at
batch 64. Prints a table, then one JSON line.

The drift monitor's cost: a second server with its checks pushed out of reach (O2V_DRIFT_CHECK_EVERY and
O2V_DRIFT_EMBED_CHECK_EVERY at 1,000,000) takes its turn in every round beside the first; the table gives both
throughputs, their ratio (target ≥ 0.85 at batch 64), and the monitor's share of server CPU at saturation two ways:
1 − CPU per sentence without checks / with them, and the checking thread's own working time (GET /drift
`checking.cpu_s`) over the server's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import httpx
import orjson

from bench.tables import print_table
from service.datasets import read_sts
from service.encoders.base import l2_normalize
from service.encoders.onnx import OnnxEncoder
from service.settings import Settings
from tests.server_process import ServerProcess

BATCHES = (1, 16, 64)
TARGET = 0.6
MONITOR_TARGET = 0.85
CHECKS_OFF = {"O2V_DRIFT_CHECK_EVERY": "1000000", "O2V_DRIFT_EMBED_CHECK_EVERY": "1000000"}


def sentences() -> list[str]:
    pairs = read_sts("dev")
    return list(dict.fromkeys([p.a for p in pairs] + [p.b for p in pairs]))


def batches(texts: list[str], size: int) -> Callable[[], list[str]]:
    """Consecutive batches of `size` texts, cycling through the corpus."""
    cycle = itertools.cycle(range(0, len(texts) - size, size))
    return lambda: texts[(start := next(cycle)) : start + size]


@dataclass
class Run:
    """One round of one side: sentences/s, and CPU milliseconds per 1,000 sentences (server and client)."""

    rate: float
    cpu: float
    client_cpu: float = 0.0
    checking: float = 0.0  # seconds the drift checking thread worked per server CPU second


def in_process(encoder: OnnxEncoder, texts: list[str], size: int, seconds: float) -> Run:
    next_batch = batches(texts, size)
    l2_normalize(encoder.embed_texts(next_batch()))  # warm-up
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        l2_normalize(encoder.embed_texts(next_batch()))
        done += size
    return Run(done / (time.perf_counter() - started), (time.process_time() - cpu) * 1e6 / done)


def server_cpu_seconds(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics").text
    return float(next(line.split()[1] for line in metrics.splitlines() if line.startswith("process_cpu_seconds_total")))


def checking_seconds(url: str) -> float:
    """The drift checking thread's CPU seconds so far (GET /drift `checking.cpu_s`)."""
    return float((httpx.get(f"{url}/drift", timeout=30).json().get("checking") or {}).get("cpu_s", 0.0))


async def over_http(url: str, texts: list[str], size: int, seconds: float, concurrency: int, encoding: str) -> Run:
    next_batch = batches(texts, size)
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def client(deadline: float) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                body = {"input": next_batch(), "encoding_format": encoding}
                answer = await http.post("/v1/embeddings", content=orjson.dumps(body), headers=JSON)
                answer.raise_for_status()
                assert answer.content.count(b'"index"') == size  # a load generator's check, not a full parse
                done += size

        await asyncio.gather(*(client(time.perf_counter() + 1.0) for _ in range(concurrency)))  # warm-up
        server_cpu, client_cpu, checking = server_cpu_seconds(url), time.process_time(), checking_seconds(url)
        done, started = 0, time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(concurrency)))
        rate = done / (time.perf_counter() - started)
        client_cpu = (time.process_time() - client_cpu) * 1e6 / done
        server_cpu = server_cpu_seconds(url) - server_cpu
        checking = (checking_seconds(url) - checking) / max(server_cpu, 1e-9)
        return Run(rate, server_cpu * 1e6 / done, client_cpu, checking)


JSON = {"content-type": "application/json"}


def median(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in ("rate", "cpu", "client_cpu", "checking")))


def paired(numerators: list[Run], denominators: list[Run]) -> tuple[float, str]:
    """The median of the per-round throughput ratios (two sides measured seconds apart in the same round, so a burst
    of load elsewhere weighs on both), and their spread: the quartiles, then the lowest and highest."""
    ratios = sorted(a.rate / b.rate for a, b in zip(numerators, denominators, strict=True))
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    return statistics.median(ratios), f"{q1:.2f}–{q3:.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})"


def rotated(sides: list[Callable[[], Run]], turn: int) -> list[Callable[[], Run]]:
    """The sides in the order of round `turn`: each goes first, second and last equally often, so a burst of load
    from other processes does not always fall on the same side."""
    return sides[turn % len(sides) :] + sides[: turn % len(sides)]


@dataclass
class Batch:
    """One batch size's medians of the three sides, and the paired ratios (median, spread) against HTTP."""

    local: Run
    remote: Run
    unwatched: Run
    ratio: tuple[float, str]
    monitor_ratio: tuple[float, str]

    def row(self, size: int) -> dict[str, object]:
        return {
            "batch": size,
            "in_process": round(self.local.rate),
            "http": round(self.remote.rate),
            "ratio": round(self.ratio[0], 2),
            "ratio_spread": self.ratio[1],
            "http_checks_off": round(self.unwatched.rate),
            "monitor_ratio": round(self.monitor_ratio[0], 2),
            "monitor_ratio_spread": self.monitor_ratio[1],
            "cpu_in_process_ms": round(self.local.cpu),
            "cpu_server_ms": round(self.remote.cpu),
            "cpu_server_checks_off_ms": round(self.unwatched.cpu),
            "monitor_cpu_share": round(1.0 - self.unwatched.cpu / self.remote.cpu, 3),
            "checking_cpu_share": round(self.remote.checking, 3),
            "cpu_client_ms": round(self.remote.client_cpu),
        }


def measure(args: argparse.Namespace, texts: list[str], loads: list[float]) -> dict[int, Batch]:
    """Every batch size, the three sides taking turns in rotating order; the load average noted every round."""
    encoder = OnnxEncoder.from_settings(Settings())
    batches: dict[int, Batch] = {}

    def http(url: str, size: int) -> Run:
        return asyncio.run(over_http(url, texts, size, args.seconds, args.concurrency, args.encoding))

    with (
        tempfile.TemporaryDirectory() as data_dir,
        tempfile.TemporaryDirectory() as other_dir,
        ServerProcess({"O2V_DATA_DIR": data_dir}) as server,
        ServerProcess({"O2V_DATA_DIR": other_dir, **CHECKS_OFF}) as checks_off,
    ):
        for size in BATCHES:
            sides: list[Callable[[], Run]] = [
                partial(in_process, encoder, texts, size, args.seconds),
                partial(http, server.url, size),
                partial(http, checks_off.url, size),
            ]
            runs: dict[Callable[[], Run], list[Run]] = {side: [] for side in sides}
            for turn in range(args.rounds):
                for side in rotated(sides, turn):
                    runs[side].append(side())
                loads.append(os.getloadavg()[0])
            local, remote, off = (runs[side] for side in sides)
            batches[size] = Batch(
                median(local), median(remote), median(off), paired(remote, local), paired(remote, off)
            )
    return batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time of one round of one side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per batch size, sides taking turns")
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP requests in flight")
    parser.add_argument("--encoding", choices=("float", "base64"), default="float")
    args = parser.parse_args()

    texts = sentences()
    loads: list[float] = []
    batches = measure(args, texts, loads)
    rows = [batch.row(size) for size, batch in batches.items()]
    print(
        f"sentences/s (median of {args.rounds} rounds), {len(texts)} STS-B dev sentences, "
        f"{args.concurrency} concurrent clients, {args.encoding} answers; load average {min(loads):.1f}–"
        f"{max(loads):.1f} (median {statistics.median(loads):.1f}); ratios: the median of the per-round ratios, "
        "spread: their quartiles (lowest–highest); CPU ms per 1,000 sentences; "
        "monitor share: 1 − server CPU without checks / with them; checking: the drift thread's CPU time / "
        "server CPU"
    )
    columns = [("batch", "batch"), ("in_process", "in-process/s"), ("http", "HTTP/s"), ("ratio", "HTTP / in-process")]
    columns += [("ratio_spread", "spread"), ("http_checks_off", "HTTP/s checks off")]
    columns += [("monitor_ratio", "HTTP / checks off"), ("monitor_ratio_spread", "spread")]
    columns += [
        ("cpu_in_process_ms", "CPU in-process"),
        ("cpu_server_ms", "CPU server"),
        ("cpu_server_checks_off_ms", "CPU server checks off"),
        ("monitor_cpu_share", "monitor share"),
        ("checking_cpu_share", "checking"),
        ("cpu_client_ms", "CPU client"),
    ]
    print_table(rows, columns)
    ratio64, monitor64 = batches[64].ratio[0], batches[64].monitor_ratio[0]
    summary = {
        "bench": "http_overhead",
        "encoding": args.encoding,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "load_average": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
        "results": rows,
        "target_ratio_batch64": TARGET,
        "target_monitor_ratio_batch64": MONITOR_TARGET,
        "ok": ratio64 >= TARGET and monitor64 >= MONITOR_TARGET,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
