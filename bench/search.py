"""Vector search speed, memory and recall of every FAISS index kind on synthetic unit vectors (the service's code).

For each size and data kind, one row per index kind (--kinds) and search setting: index RAM (the FAISS index as
`faiss.serialize_index` writes it, which is what it holds in memory, plus tombstones; the compressed kinds re-rank
from float vectors read per query from a SQLite store built like a collection's, so they add no RAM of their own
and the queries/s include those reads), build time, queries/s one query at a time and in batches of 64, × exact,
and recall@10 against exact search, over a sweep of efSearch (HNSW kinds) and nprobe (IVF kinds). `uniform`
vectors are uniform on the sphere (the worst case: every point is almost equally far from every other);
`embedding` vectors lie near a random rank-32 subspace plus isotropic noise (not clustered), as sentence embeddings
roughly do. Prints a table, the 10M projection from the measured per-vector costs, and one JSON line.

With `--stores faiss,milvus` it measures the collection engines instead, through the service's own collection
interface (service/index/base.py): load time (upserts of --store-batch items, then until searches use the index),
queries/s one query per `search` call, latency, and recall@10 against exact search, unfiltered, with a filter
matching 10 % of the items, and classify (the kNN vote over a label key every item carries). Milvus is Milvus
Lite in a temporary folder unless --milvus-uri names a server; `milvus-server` starts an embedded Milvus 2.3.5 server
(the `milvus-server` extra) in the work folder.

    python -m bench.search --sizes 100000,1000000 --data embedding,uniform
    python -m bench.search --sizes 1000000 --data embedding --kinds flat,hnsw_sq8 --hnsw-m 12 --ef-search 256,512
    python -m bench.search --stores faiss,milvus --sizes 100000 --data embedding --store-index flat,hnsw
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.tables import print_table
from service.index.base import CollectionRegistry, Item, VectorCollection, unit_rows
from service.index.config import IndexConfig
from service.index.engines.faiss.store import Store
from service.index.engines.faiss.vector_index import (
    CLASSES,
    HnswIndex,
    IvfIndex,
    VectorIndex,
    VectorsOf,
)

K = 10
BATCH = 64
GOAL = {"recall@10": 0.95, "speedup_1": 10.0, "ram_mib_per_million": 500}
"""The collections target (docs: DESIGN.md): at 1M vectors, recall@10 ≥ 0.95, ≥ 10× exact, ≤ 500 MiB of index RAM."""


def vectors(kind: str, n: int, dim: int, seed: int, rank: int, noise: float, chunk: int = 100_000) -> np.ndarray:
    """n unit vectors; `embedding` ones share one random rank-`rank` basis (fixed by dim and rank, not seed)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(rank).standard_normal((rank, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        if kind == "embedding":
            x = rng.standard_normal((m, rank), dtype=np.float32) @ basis + noise * np.sqrt(rank) * x
        out[start : start + m] = unit_rows(x)
    return out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_search(
    index: VectorIndex, queries: np.ndarray, batch: int, repeats: int = 1, vectors_of: VectorsOf | None = None
) -> tuple[np.ndarray, float]:
    """(labels, queries/s) searching `batch` queries per call, after one warm-up call; the best of `repeats`
    passes, since other processes on a shared machine only ever slow a pass down."""
    labels = np.empty((len(queries), K), dtype=np.int64)
    index.search(queries[:batch], K, vectors_of)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(queries), batch):
            labels[i : i + batch] = index.search(queries[i : i + batch], K, vectors_of)[1]
        best = min(best, time.perf_counter() - start)
    return labels, len(queries) / best


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def build(index: VectorIndex, data: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """Train (IVF kinds) and add everything; seconds and the RAM the index holds afterwards."""
    gc.collect()
    start = time.perf_counter()
    if isinstance(index, IvfIndex):
        sample = np.random.default_rng(0).choice(len(data), min(len(data), 64 * index.config.nlist), replace=False)
        index.train(data[np.sort(sample)])
    index.add(ids, data)
    seconds = time.perf_counter() - start
    ram = index_bytes(index) / 2**20
    return {
        "build_s": round(seconds, 1),
        "ram_mib": round(ram, 1),
        "ram_mib_per_million": round(ram / (len(data) / 1e6)),
    }


def index_bytes(index: VectorIndex) -> int:
    """What the index holds in memory: FAISS's own serialisation of it (codes, graph, lists, ids) plus tombstones."""
    return sum(array.nbytes for array in index.state().values())


def rerank_store(folder: Path, data: np.ndarray, chunk: int = 10_000) -> Store:
    """A collection's SQLite store of `data` (rows 1..n, as `np.arange(1, n + 1)` keys the indexes), written as the
    service writes it: what the compressed kinds re-rank from, per query."""
    store = Store(folder / "items.sqlite")
    for start in range(0, len(data), chunk):
        batch = [Item(f"v{i}", "", {}) for i in range(start, min(len(data), start + chunk))]
        with store.transaction():
            store.upsert(batch, data[start : start + len(batch)])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return store


def single_qps(index: VectorIndex, queries: np.ndarray, vectors_of: VectorsOf | None = None) -> float:
    """One query per call on one thread: a lone query has nothing to share between threads, and on a busy
    machine an OpenMP team waiting for its second thread costs more than the query."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return timed_search(index, queries, 1, repeats=3, vectors_of=vectors_of)[1]
    finally:
        faiss.omp_set_num_threads(threads)


def measure(
    index: VectorIndex, queries: np.ndarray, truth: np.ndarray, singles: int, vectors_of: VectorsOf | None
) -> dict[str, float]:
    found, batch_qps = timed_search(index, queries, BATCH, vectors_of=vectors_of)
    single = single_qps(index, queries[:singles], vectors_of)
    return {"recall@10": round(recall(found, truth), 4), "qps_1": round(single, 1), "qps_64": round(batch_qps, 1)}


def settings_swept(kind: str, config: IndexConfig, args: argparse.Namespace) -> list[tuple[IndexConfig, str]]:
    """(config, label) per search setting of this kind: efSearch for the HNSW kinds, nprobe for the IVF ones."""
    rerank = f" rerank={config.rerank}" if CLASSES[kind](config, 8).rerank_extra else ""
    if issubclass(CLASSES[kind], HnswIndex):
        return [(replace(config, ef_search=ef), f"efSearch={ef}{rerank}") for ef in args.ef_search]
    if issubclass(CLASSES[kind], IvfIndex):
        return [(replace(config, nprobe=p), f"nprobe={p}{rerank}") for p in args.nprobe]
    return [(config, "-")]


def label(index: VectorIndex) -> str:
    c = index.config
    if isinstance(index, HnswIndex):
        return f"{index.kind} M={c.m} efC={c.ef_construction}"
    if isinstance(index, IvfIndex):
        parts = f" pq_m={index.index.pq.M}" if hasattr(index.index, "pq") else ""
        return f"{index.kind} nlist={index.index.nlist}{parts}"
    return index.kind


def run_size(n: int, kind: str, args: argparse.Namespace) -> list[dict]:
    data = vectors(kind, n, args.dim, 1, args.rank, args.noise)
    queries = vectors(kind, args.queries, args.dim, 2, args.rank, args.noise)
    ids = np.arange(1, n + 1, dtype=np.int64)
    base: dict[str, Any] = {"n": n, "data": kind}
    config = IndexConfig(
        m=args.hnsw_m,
        ef_construction=args.ef_construction,
        nlist=args.nlist or int(4 * np.sqrt(n)) // 64 * 64,
        pq_m=args.pq_m,
        rerank=args.rerank,
    )
    rows: list[dict[str, Any]] = []

    exact = VectorIndex(config, args.dim)
    built = build(exact, data, ids)
    truth, exact_qps_64 = timed_search(exact, queries, BATCH)
    exact_qps_1 = single_qps(exact, queries[: args.exact_singles])
    exact_row = {**base, "index": "flat", "param": "-", "recall@10": 1.0, "qps_1": round(exact_qps_1, 1)}
    rows.append({**exact_row, "qps_64": round(exact_qps_64, 1), **built, "rerank_from": "-"})
    del exact
    print(f"[{kind} {n}] flat: {rows[-1]}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-search-", dir=args.workdir) as folder:
        store = None
        for name in [k for k in args.kinds if k != "flat"]:
            index = CLASSES[name](config, args.dim)
            built = build(index, data, ids)
            vectors_of: VectorsOf | None = None
            if index.rerank_extra:
                if store is None:
                    started = time.perf_counter()
                    store = rerank_store(Path(folder), data)
                    print(f"[{kind} {n}] re-rank store: {time.perf_counter() - started:.0f} s", file=sys.stderr)
                vectors_of = lambda r, s=store: s.vectors(r.tolist(), args.dim)  # noqa: E731
            disk = round((Path(folder) / "items.sqlite").stat().st_size / 2**20) if vectors_of else None
            for searched, param in settings_swept(name, config, args):
                index.config = searched
                rows.append({**base, "index": label(index), "param": param, **built})
                rows[-1]["rerank_from"] = f"SQLite ({disk} MiB on disk)" if vectors_of else "-"
                rows[-1]["sqlite_mib"] = disk
                rows[-1].update(measure(index, queries, truth, args.singles, vectors_of))
                print(f"[{kind} {n}] {rows[-1]}", file=sys.stderr, flush=True)
            del index
        if store is not None:
            store.close()
    del data
    for row in rows:
        row["speedup_1"] = round(row["qps_1"] / exact_qps_1, 1)
        row["speedup_64"] = round(row["qps_64"] / exact_qps_64, 1)
    return rows


HANDOFF_S = 20.0
SERVERS: list = []
"""The embedded Milvus server of `--stores milvus-server`, started at its first use, stopped at exit."""


def embedded_server(args: argparse.Namespace) -> str:
    """The address of an embedded Milvus server (the `milvus-server` extra) in the work folder, started once."""
    if not SERVERS:
        from service.index.engines.milvus.embedded import Server

        server = Server(Path(tempfile.mkdtemp(prefix="bench-milvus-server-", dir=args.workdir)))
        server.start()
        atexit.register(server.stop)
        SERVERS.append(server)
    return SERVERS[0].uri


def open_store(store: str, folder: Path, config: IndexConfig, args: argparse.Namespace) -> CollectionRegistry:
    if store in ("milvus", "milvus-server"):
        from service.index.engines.milvus.registry import MilvusCollections

        uri = embedded_server(args) if store == "milvus-server" else args.milvus_uri or str(folder / "milvus.db")
        return MilvusCollections(uri, defaults=config, timeout=600)
    from service.index.engines.faiss.registry import FaissCollections

    return FaissCollections(folder, config)


def until_indexed(
    registry: CollectionRegistry, collection: VectorCollection, reopen: Callable[[], CollectionRegistry]
) -> tuple[CollectionRegistry, VectorCollection]:
    """Milvus: flush the last rows into a segment and wait for its index build (Milvus Lite builds in a background
    thread, a server in its index nodes), so the timed searches use the index. FAISS indexes as it inserts.
    Milvus Lite's describe_index reports no progress and nothing public waits for its background worker, but
    closing its last connection stops its server, which drains that worker: the registry is opened again, and
    loading the collection reads the finished index files. (The registry and collection to go on with.)"""
    from service.index.engines.milvus.collection import MilvusCollection

    if not isinstance(collection, MilvusCollection):
        return registry, collection
    client, target = collection.client, collection.target
    client.flush(target, timeout=600)
    if collection.owner.lite:
        registry.close()
        registry = reopen()
        collection = registry.get(collection.name)
        collection.count_where()  # loads it
        return registry, collection
    while client.describe_index(target, "vector").get("pending_index_rows", 0):
        time.sleep(1)
    # a server's query nodes go on searching sealed segments through an interim index (2.3: IVF with a fixed
    # nprobe, ef ignored: recall 0.24 at 10k uniform vectors) until the next target update hands the built index
    # over: measured within 20 s on the embedded server, so the bench waits that long
    time.sleep(HANDOFF_S)
    return registry, collection


def timed_queries(collection: VectorCollection, queries: np.ndarray, flt: dict | None) -> tuple[list, float, float]:
    """(hit ids per query, queries/s, p99 ms): one `search` call per query, as a request makes it."""
    collection.search(queries[0], K, flt)
    found, times = [], []
    for query in queries:
        start = time.perf_counter()
        found.append([hit.id for hit in collection.search(query, K, flt)])
        times.append(time.perf_counter() - start)
    return found, len(queries) / sum(times), 1000 * statistics.quantiles(times, n=100)[98]


def timed_classify(collection: VectorCollection, queries: np.ndarray) -> tuple[list, float, float]:
    """classify's kNN vote (service/index/classify.py) over the label key every item carries: (neighbour ids,
    queries/s, p99 ms), one call per query."""
    from service.index.classify import classify

    classify(collection, queries[0], "g", K, -1.0)
    found, times = [], []
    for query in queries:
        start = time.perf_counter()
        found.append([hit.id for hit in classify(collection, query, "g", K, -1.0).neighbors])
        times.append(time.perf_counter() - start)
    return found, len(queries) / sum(times), 1000 * statistics.quantiles(times, n=100)[98]


def run_stores(n: int, kind: str, args: argparse.Namespace) -> list[dict]:
    data = vectors(kind, n, args.dim, 1, args.rank, args.noise)
    queries = vectors(kind, args.singles, args.dim, 2, args.rank, args.noise)
    group = np.arange(n) % 10
    exact = np.argsort(-(queries @ data.T), axis=1, kind="stable")
    truth = {None: exact[:, :K], "10%": np.array([row[group[row] == 3][:K] for row in exact])}
    truth["classify"] = truth[None]
    filters = {None: None, "10%": {"g": 3}, "classify": None}
    asked = {None: len(queries), "10%": args.filtered_singles, "classify": args.filtered_singles}
    config = IndexConfig(m=args.hnsw_m, ef_construction=args.ef_construction)
    rows = []
    for store in args.stores:
        for index in args.store_index:
            with tempfile.TemporaryDirectory(prefix=f"bench-{store}-", dir=args.workdir) as folder:
                registry = open_store(store, Path(folder), config, args)
                collection, _ = registry.create(f"bench_{index}_{n}", index)
                start = time.perf_counter()
                for i in range(0, n, args.store_batch):
                    batch = [Item(f"v{j}", "", {"g": int(group[j])}) for j in range(i, min(n, i + args.store_batch))]
                    collection.upsert(batch, data[i : i + len(batch)])
                upserted = time.perf_counter() - start
                reopen = partial(open_store, store, Path(folder), config, args)
                registry, collection = until_indexed(registry, collection, reopen)
                load = {"upsert_s": round(upserted, 1), "load_s": round(time.perf_counter() - start, 1)}
                print(f"[{store} {index} {n}] loaded: {load}", file=sys.stderr, flush=True)
                efs = args.ef_search if index == "hnsw" else [None]
                # every efSearch unfiltered, then the filtered search and classify once, at the largest
                for ef, name in [(ef, None) for ef in efs] + [(efs[-1], "10%"), (efs[-1], "classify")]:
                    if ef is not None:
                        collection.set_search_params(ef_search=ef)
                    if name == "classify":
                        found, qps, p99 = timed_classify(collection, queries[: asked[name]])
                    else:
                        found, qps, p99 = timed_queries(collection, queries[: asked[name]], filters[name])
                    hits = np.array([[int(i[1:]) for i in ids] + [-1] * (K - len(ids)) for ids in found])
                    rows.append(
                        {
                            "store": store,
                            "n": n,
                            "data": kind,
                            "index": index,
                            "param": f"efSearch={ef}" if ef else "-",
                            "filter": name or "-",
                            "recall@10": round(recall(hits, truth[name][: asked[name]]), 4),
                            "qps_1": round(qps, 1),
                            "p99_ms": round(p99, 2),
                            **load,
                            "load_items_per_s": round(n / load["load_s"]),
                        }
                    )
                    print(f"[{store} {index} {n}] {rows[-1]}", file=sys.stderr, flush=True)
                registry.close()
    return rows


def verdict(rows: list[dict]) -> dict:
    """Per data kind at the largest size: the fastest single-query setting with recall ≥ the goal's within the
    goal's RAM, whether it is ≥ the goal's × exact, and the 10M projection from its measured per-vector cost."""
    out = {}
    for kind in sorted({r["data"] for r in rows}):
        largest = max(r["n"] for r in rows if r["data"] == kind)
        ok = [r for r in rows if r["data"] == kind and r["n"] == largest and r["index"] != "flat"]
        ok = [r for r in ok if r["recall@10"] >= GOAL["recall@10"]]
        small = [r for r in ok if r["ram_mib_per_million"] <= GOAL["ram_mib_per_million"]]
        best = max(small, key=lambda r: r["qps_1"], default=None)
        out[kind] = {
            "n": largest,
            "goal": GOAL,
            "best": best and {k: best[k] for k in ("index", "param", "recall@10", "speedup_1", "ram_mib")},
            "met": best is not None and best["speedup_1"] >= GOAL["speedup_1"],
            "projection_10m": best and projection(best, 10_000_000),
        }
    return out


def projection(row: dict, n: int, machine_gib: float = 24.0, dim: int = 384, nlist: int = 4096) -> dict:
    """RAM for `n` vectors at this row's measured index bytes per vector, and what else the machine needs: a
    rebuild built aside holds the new index beside the old one plus the floats it reads at a time (a chunk, or an
    IVF kind's training sample of 256 per list; vector_index.build_streamed); the SQLite store (the float vectors
    re-ranking reads, texts, metadata) is on disk, at the row's measured bytes per vector."""
    per_vector = row["ram_mib"] * 2**20 / row["n"]
    index_gib = per_vector * n / 2**30
    reading_gib = dim * 4 * 256 * nlist / 2**30
    rebuild_gib = 2 * index_gib + reading_gib
    disk_gib = (row.get("sqlite_mib") or dim * 4 * row["n"] / 2**20) / row["n"] * n / 2**10
    return {
        "n": n,
        "index_bytes_per_vector": round(per_vector),
        "index_gib": round(index_gib, 1),
        "rebuild_peak_gib": round(rebuild_gib, 1),
        "sqlite_disk_gib": round(disk_gib, 1),
        "fits_steady": index_gib < machine_gib,
        "fits_rebuild": rebuild_gib < machine_gib,
        "machine_gib": machine_gib,
    }


def main() -> None:
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=ints, default=[100_000, 1_000_000])
    p.add_argument("--data", default="embedding,uniform", help="embedding and/or uniform")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--rank", type=int, default=32, help="embedding data: dimension of the subspace")
    p.add_argument("--noise", type=float, default=0.3, help="embedding data: noise beside the subspace")
    p.add_argument("--queries", type=int, default=1024, help="queries for recall and batch speed")
    p.add_argument("--singles", type=int, default=200, help="queries timed one at a time (approximate indexes)")
    p.add_argument("--exact-singles", type=int, default=20, help="queries timed one at a time (exact)")
    p.add_argument("--hnsw-m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=40)
    p.add_argument("--ef-search", type=ints, default=[32, 64, 128, 256])
    p.add_argument("--nlist", type=int, default=0, help="default: 4·sqrt(n), a multiple of 64")
    p.add_argument("--nprobe", type=ints, default=[8, 32, 64])
    p.add_argument("--kinds", type=lambda s: s.split(","), default=list(CLASSES), help="index kinds (flat always)")
    p.add_argument("--pq-m", type=int, default=48, help="ivf_pq: bytes per vector")
    p.add_argument("--rerank", type=int, default=50, help="hnsw_sq8, ivf_pq: candidates re-ranked exactly")
    p.add_argument("--threads", type=int, default=0, help="FAISS threads (default: all cores)")
    p.add_argument(
        "--stores", type=lambda s: s.split(","), help="compare collection engines: faiss, milvus, milvus-server"
    )
    p.add_argument("--store-index", type=lambda s: s.split(","), default=["flat", "hnsw"], help="with --stores")
    p.add_argument("--store-batch", type=int, default=1000, help="items per upsert call, with --stores")
    p.add_argument("--filtered-singles", type=int, default=50, help="filtered queries timed, with --stores")
    p.add_argument("--milvus-uri", help="a Milvus server, with --stores (default: Milvus Lite in a temp folder)")
    p.add_argument("--workdir", help="where the stores' temporary folders go (default: the system's)")
    p.add_argument("--json", type=Path, help="also write the summary JSON to this file")
    args = p.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    started = time.perf_counter()
    if args.stores:
        rows = [row for kind in args.data.split(",") for n in args.sizes for row in run_stores(n, kind, args)]
        columns = [("store", "store"), ("n", "vectors"), ("index", "index"), ("param", "search param")]
        columns += [("filter", "filter"), ("recall@10", "recall@10"), ("qps_1", "q/s (1)"), ("p99_ms", "p99 ms")]
        columns += [("load_s", "load s"), ("load_items_per_s", "items/s loaded")]
        print_table(rows, columns)
        report(args, {"bench": "search-stores", "store_batch": args.store_batch}, rows, started)
        return
    rows = [row for kind in args.data.split(",") for n in args.sizes for row in run_size(n, kind, args)]
    columns = [("data", "data"), ("n", "vectors"), ("index", "index"), ("param", "search param")]
    columns += [("ram_mib", "RAM MiB"), ("ram_mib_per_million", "MiB per 1M"), ("build_s", "build s")]
    columns += [("recall@10", "recall@10"), ("qps_1", "q/s (1)"), ("speedup_1", "× exact (1)")]
    columns += [("qps_64", "q/s (64)"), ("speedup_64", "× exact (64)"), ("rerank_from", "re-ranked from")]
    print_table(rows, columns)
    target = verdict(rows)
    for kind, found in target.items():
        print(f"{kind}: goal met: {found['met']}; best: {found['best']}; 10M: {found['projection_10m']}")
    report(args, {"bench": "search", "target": target}, rows, started)


def report(args: argparse.Namespace, head: dict, rows: list[dict], started: float) -> None:
    """The summary as one JSON line (and in --json's file)."""
    summary = {
        **head,
        "dim": args.dim,
        "threads": faiss.omp_get_max_threads(),
        "peak_rss_mib": round(peak_mib()),
        "seconds": round(time.perf_counter() - started),
        "rows": rows,
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
