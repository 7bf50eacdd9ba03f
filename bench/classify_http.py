"""Classify over HTTP, store against store: a real `o2v serve` per store, 10,000 labelled items upserted over HTTP,
then 3,080 POST /collections/{name}/classify requests from a few concurrent clients.

    python -m bench.classify_http --stores faiss,milvus-server [--items 10000] [--requests 3080] [--concurrency 4]
                                  [--index flat] [--k 10] [--synthetic] [--json bench/results/classify-http.json]

The case a team tries first (issue 28): a labelled catalogue, then a stream of classify calls, through the service
as deployed. Each store gets its own `o2v serve` process (tests/server_process.py) in a fresh data folder, the same
settings otherwise: `faiss` is the embedded engine (SQLite + FAISS), `milvus-server` the Milvus engine
(O2V_VECTOR_STORE=milvus) against an embedded Milvus 2.3.5 server (the `milvus-server` extra) started for the run,
`milvus` the engine on Milvus Lite. The items are CLINC150's in-scope train utterances (read in place from
O2V_SHARED_DATA), spread over every intent; the queries are its test utterances, out-of-scope ones included as
they come, used only as queries. Without the data, a seeded synthetic catalogue of word-bag intents stands in.
Items go in batches of `--batch` (O2V_MAX_REQUEST_TEXTS), `--concurrency` requests in flight, and classify keeps as
many in flight; nothing is warmed up or flushed first, as a client would not. Per store: upsert seconds, classify
seconds, q/s, p50/p99 latency, the in-scope accuracy of the plain vote, and requests that failed. Targets: upsert
plus classify under 5 minutes per store, and Milvus server's classify q/s at least 1/3 of the embedded engine's in
the same run. Every store's server runs throughout (the Milvus server's own background work included); the upserts
go one store after another, then the classify requests in `--rounds` rounds, the stores taking turns within each,
so that other jobs on this shared machine weigh on every store alike (the load average after each round is
reported). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson

from bench.tables import print_table
from service.datasets import read_clinc
from service.evaluation import OOS
from tests.server_process import ServerProcess

STORES = ("faiss", "milvus-server", "milvus")
TOTAL_TARGET_S = 300.0
RATIO_TARGET = 1 / 3
COLLECTION = "intents"
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Catalogue:
    """Labelled items to upsert, and (text, expected label) queries; `source` says where they came from."""

    items: list[tuple[str, str]]
    queries: list[tuple[str, str]]
    source: str


def spread(rows: list, n: int) -> list:
    """`n` rows evenly over `rows` (the splits are grouped by intent: every intent keeps its share)."""
    if n >= len(rows):
        return rows
    return [rows[i] for i in np.linspace(0, len(rows) - 1, n).round().astype(int)]


def synthetic(items: int, queries: int, seed: int, intents: int = 150) -> Catalogue:
    """A seeded stand-in for CLINC150: each intent draws most words from a vocabulary of its own, some from a
    shared one, so the vote has something to find and something to get wrong."""
    rng = np.random.default_rng(seed)
    shared = [f"w{i}" for i in range(400)]
    own = [[f"i{j}x{i}" for i in range(12)] for j in range(intents)]

    def utterance(j: int) -> str:
        words = list(rng.choice(own[j], 4)) + list(rng.choice(shared, 3))
        return " ".join(rng.permutation(words))

    def rows(n: int) -> list[tuple[str, str]]:
        return [(utterance(i % intents), f"intent{i % intents}") for i in range(n)]

    return Catalogue(rows(items), rows(queries), f"synthetic (seed {seed}, {intents} intents)")


def catalogue(items: int, queries: int, seed: int, force_synthetic: bool) -> Catalogue:
    if not force_synthetic:
        try:
            train = [row for row in read_clinc("train") if row[1] != OOS]
            test = read_clinc("test")
        except FileNotFoundError:
            pass
        else:
            return Catalogue(spread(train, items), spread(test, queries), "CLINC150 train (items) / test (queries)")
    return synthetic(items, queries, seed)


@dataclass
class Turn:
    """One store's run: its timings, answers and failures, and the load average (1 min) after each of its rounds."""

    store: str
    upsert_s: float = 0.0
    classify_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    labels: list[object] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    loads: list[float] = field(default_factory=list)


async def run_requests(
    url: str, bodies: list[bytes], path: str, concurrency: int, turn: Turn
) -> tuple[list[object], list[float]]:
    """POST each body to `path`, `concurrency` in flight: each answer's JSON (None when it failed, counted in
    `turn`) and seconds."""
    answers: list[object] = [None] * len(bodies)
    latencies = [0.0] * len(bodies)
    queue = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:

        async def client() -> None:
            for i in queue:
                started = time.perf_counter()
                try:
                    answer = await http.post(path, content=bodies[i], headers=JSON)
                except httpx.HTTPError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                else:
                    if answer.status_code == 200:
                        answers[i] = orjson.loads(answer.content)
                        latencies[i] = time.perf_counter() - started
                        continue
                    failure = f"{answer.status_code}: {answer.text[:300]}"
                turn.errors += 1
                turn.first_error = turn.first_error or failure
                latencies[i] = time.perf_counter() - started

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return answers, latencies


@contextmanager
def store_env(store: str, workdir: Path) -> Iterator[dict[str, str]]:
    """The serve process' environment for `store`; an embedded Milvus server for `milvus-server`, stopped after."""
    env = {"O2V_DATA_DIR": str(workdir / "data")}
    if store != "milvus-server":
        yield {**env, "O2V_VECTOR_STORE": "faiss" if store == "faiss" else "milvus"}
        return
    from service.index.engines.milvus.embedded import Server

    server = Server(workdir / "milvus-server")
    server.start()
    try:
        yield {**env, "O2V_VECTOR_STORE": "milvus", "O2V_MILVUS_URI": server.uri}
    finally:
        server.stop()


PATH = f"/collections/{COLLECTION}"


def upsert(url: str, turn: Turn, data: Catalogue, args: argparse.Namespace) -> None:
    """Create the collection, then every item, `args.batch` a request."""
    httpx.put(f"{url}{PATH}", json={"index": args.index}, timeout=120).raise_for_status()
    items = [{"id": f"item-{i}", "text": t, "metadata": {"label": y}} for i, (t, y) in enumerate(data.items)]
    batches = [orjson.dumps({"items": items[i : i + args.batch]}) for i in range(0, len(items), args.batch)]
    started = time.perf_counter()
    asyncio.run(run_requests(url, batches, f"{PATH}/items", args.concurrency, turn))
    turn.upsert_s = time.perf_counter() - started


def classify_round(url: str, turn: Turn, queries: list[tuple[str, str]], args: argparse.Namespace) -> None:
    bodies = [orjson.dumps({"text": text, "k": args.k}) for text, _ in queries]
    started = time.perf_counter()
    answers, latencies = asyncio.run(run_requests(url, bodies, f"{PATH}/classify", args.concurrency, turn))
    turn.classify_s += time.perf_counter() - started
    turn.latencies += latencies
    turn.labels += [a["label"] if isinstance(a, dict) else None for a in answers]
    turn.loads.append(os.getloadavg()[0])


def run_stores(data: Catalogue, args: argparse.Namespace) -> list[Turn]:
    """Every store's server up at once; the upserts one store after another, then the classify requests in
    `args.rounds` rounds, the stores taking turns within each, so that other load weighs on all of them alike."""
    turns = [Turn(store) for store in args.stores]
    with ExitStack() as stack:
        urls = []
        for store in args.stores:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-classify-{store}-", dir=args.workdir))
            env = stack.enter_context(store_env(store, Path(tmp)))
            urls.append(stack.enter_context(ServerProcess(env, timeout_s=180)).url)
        for url, turn in zip(urls, turns, strict=True):
            upsert(url, turn, data, args)
        size = -(-len(data.queries) // args.rounds)
        for start in range(0, len(data.queries), size):
            for url, turn in zip(urls, turns, strict=True):
                classify_round(url, turn, data.queries[start : start + size], args)
    return turns


def row(turn: Turn, data: Catalogue) -> dict[str, object]:
    truth = [label for _, label in data.queries]
    in_scope = [i for i, label in enumerate(truth) if label != OOS]
    labels = turn.labels
    ms = sorted(1000 * s for s in turn.latencies or [0.0])
    accuracy = sum(labels[i] == truth[i] for i in in_scope) / max(len(in_scope), 1)
    return {
        "store": turn.store,
        "items": len(data.items),
        "requests": len(data.queries),
        "upsert_s": round(turn.upsert_s, 1),
        "classify_s": round(turn.classify_s, 1),
        "total_s": round(turn.upsert_s + turn.classify_s, 1),
        "qps": round(len(data.queries) / turn.classify_s, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
        "acc_in_scope": round(accuracy, 4),
        "errors": turn.errors,
        "first_error": turn.first_error,
        "load_avg": f"{min(turn.loads, default=0):.1f}–{max(turn.loads, default=0):.1f}",
    }


COUNTS = {
    "items": (10_000, "items in the collection"),
    "requests": (3_080, "classify requests in all"),
    "concurrency": (4, "requests in flight"),
    "batch": (256, "items per upsert request"),
    "rounds": (4, "classify rounds, the stores taking turns in each"),
    "k": (10, "neighbours voting"),
    "seed": (0, "seed of the synthetic catalogue"),
}
"""The run's whole-number options: default and help."""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stores", type=lambda s: s.split(","), default=["faiss", "milvus-server"], help=str(STORES))
    p.add_argument("--index", default="flat", help="the collection's index kind (PUT's `index`)")
    for name, (default, help_text) in COUNTS.items():
        p.add_argument(f"--{name}", type=int, default=default, help=f"{help_text} (default {default})")
    p.add_argument("--synthetic", action="store_true", help="the seeded synthetic catalogue even with CLINC150 here")
    p.add_argument("--workdir", help="where the stores' temporary folders go (default: the system's)")
    p.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    args = p.parse_args()
    unknown = set(args.stores) - set(STORES)
    if unknown:
        p.error(f"unknown stores {sorted(unknown)}; known: {', '.join(STORES)}")
    data = catalogue(args.items, args.requests, args.seed, args.synthetic)
    started = time.perf_counter()
    turns = run_stores(data, args)
    rows = [row(turn, data) for turn in turns]
    reference = next((turn.labels for turn in turns if turn.store == "faiss"), None)
    for r, turn in zip(rows, turns, strict=True):
        if reference is not None:  # the share of answers the embedded engine gave too
            r["same_as_faiss"] = round(float(np.mean([a == b for a, b in zip(turn.labels, reference, strict=True)])), 4)
    by_store = {r["store"]: r for r in rows}
    ratio = None
    if "faiss" in by_store and "milvus-server" in by_store:
        ratio = round(float(by_store["milvus-server"]["qps"]) / float(by_store["faiss"]["qps"]), 3)  # type: ignore[arg-type]
    print(
        f"{len(data.items)} items, {len(data.queries)} classify requests ({data.source}), index {args.index}, "
        f"k={args.k}, {args.concurrency} clients, {args.rounds} rounds; load average (1 min) after each round, min–max"
    )
    columns = [("store", "store"), ("upsert_s", "upsert s"), ("classify_s", "classify s"), ("total_s", "total s")]
    columns += [("qps", "q/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("acc_in_scope", "acc in-scope")]
    columns += [("same_as_faiss", "same label as faiss"), ("errors", "errors"), ("load_avg", "load avg")]
    print_table(rows, columns)
    if ratio is not None:
        print(f"milvus-server / faiss classify q/s: {ratio} (target ≥ {RATIO_TARGET:.3f})")
    summary = {
        "bench": "classify_http",
        "source": data.source,
        "index": args.index,
        "k": args.k,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
        "ratio_milvus_server_to_faiss_qps": ratio,
        "target_total_s": TOTAL_TARGET_S,
        "target_ratio": round(RATIO_TARGET, 4),
        "ok": all(float(r["total_s"]) < TOTAL_TARGET_S and not r["errors"] for r in rows)  # type: ignore[arg-type]
        and (ratio is None or ratio >= RATIO_TARGET),
        "seconds": round(time.perf_counter() - started, 1),
        "cpus": os.cpu_count(),
    }
    print(orjson.dumps(summary).decode())
    if args.json:
        args.json.write_text(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
