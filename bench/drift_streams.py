"""Drift monitor on real, ordered streams (bench.drift's synthetic runs are shuffled draws): false alarms and
time to detection with the served model, the monitor's settings and its checks after every `check_every` requests.

    python -m bench.drift_streams              # every stream below
    python -m bench.drift_streams --limit 1500 # at most this many requests per stream (a quick check)
    python -m bench.drift_streams --paced      # seconds to drift at 10 requests/s, paced checks vs every due count

Streams, each into a fresh monitor, one request at a time in the file's own order:
- `sts-test`: STS-B test pairs through the similarity stream, against the model card (STS-B dev cosines);
- `sts-replay`: the STS-B dev pairs uploaded as the similarity baseline with their texts' embeddings (what PUT
  /drift/baseline with pairs does: the similarity family's embedding reference too), then replayed in file order;
- `clinc`: CLINC150 in-scope test utterances in file order (grouped by intent) classified against a collection of
  the in-scope train split (service.index, flat; k=10), feeding `classify_confidence`, the label ranking and the
  collection's own stream (leave-one-out reference, estimated accuracy);
- `clinc-typos`: the same utterances with 1–2 seeded typing slips each (service.evaluation.with_typos);
- `reviews`: the review sentences grouped by source (amazon, yelp, imdb) through the embeddings route family:
  the token streams and the MMD test.
Per stream: the streams ever in `drift` (the target is none on the clean ones), the first request at which any
stream was in `drift` (the typo'd one: within 1,000), and for the classify streams the estimated accuracy against
the true accuracy of the same answers (over the whole stream and per window at every check; target within 3 points).
Prints a table, then one JSON line (also written to bench/results/drift_streams.json).

`--paced`: the cost bound's price in wall time. The monitor runs with its own checking thread (`DriftWorker`, the
real clock) while /similarity-like requests arrive at `--rate` per second: STS-B test pairs in file order (the
similarity family learns its embedding reference from them), then machine log lines, each sent as a pair with
itself (another domain, and cosines of 1: a client bug). Seconds from
the first log pair until the similarity score stream and the similarity embedding family reach `drift`, with the
pacing defaults (CHECK_INTERVAL_S, EMBED_CHECK_INTERVAL_S, the CPU budget) and with checks whenever their count
is due (intervals 0, no rest): the state before the pacing. Writes bench/results/drift_paced.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.tables import print_table
from service.datasets import read_clinc, read_reviews, read_sts
from service.drift import DriftConfig, DriftMonitor
from service.drift.classify import Reference
from service.drift.embeddings import _family, load_sample
from service.drift.tokens import TokenModel, TokenRates
from service.drift.worker import DriftWorker
from service.encoders.onnx import OnnxEncoder
from service.evaluation import OOS, with_typos
from service.index.base import Item
from service.index.classify import classify, leave_one_out
from service.index.engines.faiss.registry import FaissCollections
from service.index.metadata import canonical
from service.settings import Settings

RESULTS = Path(__file__).parent / "results" / "drift_streams.json"
PACED_RESULTS = Path(__file__).parent / "results" / "drift_paced.json"
PACED_NORMAL = 300  # requests of STS-B test pairs before the shift: the similarity family's reference is 500 vectors
PACED_SHIFTED = 900  # log-line requests at most after it (90 s at 10 per second)
K = 10
TYPO_SEED = 0


def embed(encoder: OnnxEncoder, texts: list[str], batch: int = 64) -> np.ndarray:
    parts = [encoder.embed_texts(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    v = np.concatenate(parts).astype(np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


class Watch:
    """Runs the due checks after every `check_every` requests and notes every stream's status."""

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor, self.requests = monitor, 0
        self.first_drift: int | None = None
        self.ever: set[str] = set()
        self.accuracy: list[tuple[float, float]] = []  # (estimated, true) at each check of a classify scope
        self.domains: dict[str, str] = {}  # per embedding family, its last verdict against the card's sample

    def request(self, truth: list[bool] | None = None) -> None:
        self.requests += 1
        if self.requests % self.monitor.config.check_every:
            return
        self.monitor.run_due_checks()
        report = self.monitor.report(detail=False)
        statuses = {name: s["status"] for name, s in report["streams"].items()}
        families = (report["embeddings"] or {}).get("families") or {}
        statuses |= {f"embeddings:{name}": family["status"] for name, family in families.items()}
        self.domains |= {name: family["domain"]["status"] for name, family in families.items() if "domain" in family}
        for name, scope in report["classify"].items():
            statuses[f"classify:{name}"] = scope["status"]
            if truth is not None and "estimated_accuracy" in scope:
                window = truth[-scope["n_live"] :]
                self.accuracy.append((scope["estimated_accuracy"], float(np.mean(window))))
        drifted = {name for name, status in statuses.items() if status == "drift"}
        if drifted and self.first_drift is None:
            self.first_drift = self.requests
        self.ever |= drifted


def row(name: str, watch: Watch, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stream": name,
        "requests": watch.requests,
        "ever_in_drift": sorted(watch.ever),
        "first_drift_at": watch.first_drift,
        "domain": ", ".join(f"{name}: {status}" for name, status in sorted(watch.domains.items())) or "-",
    }
    if watch.accuracy:
        gaps = [abs(e - t) for e, t in watch.accuracy]
        out["window_accuracy_gap_median"] = round(float(np.median(gaps)), 4)
        out["window_accuracy_gap_max"] = round(float(np.max(gaps)), 4)
    return {**out, **(extra or {})}


def similarity_stream(monitor: DriftMonitor, encoder: OnnxEncoder, pairs: list[Any]) -> Watch:
    a, b = embed(encoder, [p.a for p in pairs]), embed(encoder, [p.b for p in pairs])
    cosines = (a * b).sum(axis=1)
    watch = Watch(monitor)
    token = _family.set("similarity")
    try:
        for i, score in enumerate(cosines):
            monitor.record_embeddings(np.stack([a[i], b[i]]))
            monitor.record_many("similarity", [float(score)])
            watch.request()
    finally:
        _family.reset(token)
    return watch


def clinc_stream(
    monitor: DriftMonitor, collection: Any, vectors: np.ndarray, truth: list[str]
) -> tuple[Watch, dict[str, Any]]:
    watch, right = Watch(monitor), []
    reference = partial(leave_one_out, collection, "label", K, None, monitor.config.window * 2)
    confidences = []
    token = _family.set("collections")
    try:
        for vector, label in zip(vectors, truth, strict=True):
            result = classify(collection, vector, "label", K)
            answer = None if result.label is None else canonical(result.label)
            right.append(answer == canonical(label))
            confidences.append(result.confidence)
            monitor.record_embeddings(vector[None, :])
            monitor.record_many("classify_confidence", [result.confidence])
            monitor.record_label(answer, result.confidence)
            monitor.record_classification("clinc", "label", reference, answer, result.confidence)
            watch.request(right)
    finally:
        _family.reset(token)
    answers = reference()
    assert not isinstance(answers, str)
    estimated = float(Reference.of(answers).probability(np.array(confidences)).mean())
    extra = {"true_accuracy": round(float(np.mean(right)), 4), "estimated_accuracy": round(estimated, 4)}
    extra["accuracy_gap"] = round(abs(estimated - float(np.mean(right))), 4)
    return watch, extra


def reviews_stream(monitor: DriftMonitor, encoder: OnnxEncoder, limit: int | None) -> Watch:
    rows = read_reviews()[:limit]
    watch = Watch(monitor)
    tokenizer = encoder.tokenizer
    vectors = embed(encoder, [text for text, _, _ in rows])
    token = _family.set("embeddings")
    try:
        for (text, _, _), vector in zip(rows, vectors, strict=True):
            monitor.record_embeddings(vector[None, :])
            encoded = tokenizer.encode_counted([text])
            monitor.record_tokens(encoded.rows, encoded.lengths)
            watch.request()
    finally:
        _family.reset(token)
    return watch


def paced_run(monitor: DriftMonitor, vectors: np.ndarray, cosines: np.ndarray, rate: float) -> dict[str, Any]:
    """Requests of one pair each (`vectors`: a, b per request) at `rate` per second while the worker checks; the
    seconds from the first shifted request (number PACED_NORMAL) until each signal is in `drift`."""
    worker = DriftWorker(monitor)
    worker.start()
    stream, families = monitor.registry.get("similarity"), monitor.embeddings.families if monitor.embeddings else {}
    assert stream is not None  # a built-in stream

    def family() -> str | None:
        f = families.get("similarity")
        return None if f is None else f.tracker.status

    # the statuses as the worker left them, read without its locks: a read never delays a request
    signals = {"similarity score stream": lambda: stream.tracker.status, "similarity embedding family": family}
    first: dict[str, float | None] = dict.fromkeys(signals)
    start, token = time.monotonic(), _family.set("similarity")
    try:
        for i, score in enumerate(cosines):
            time.sleep(max(start + i / rate - time.monotonic(), 0.0))
            monitor.record_embeddings(vectors[i])
            monitor.record_many("similarity", [float(score)])
            for name, status in signals.items():
                if i >= PACED_NORMAL and first[name] is None and status() == "drift":
                    first[name] = round(time.monotonic() - (start + PACED_NORMAL / rate), 2)
            if all(v is not None for v in first.values()):
                break
    finally:
        _family.reset(token)
        worker.stop()
    return {"seconds_to_drift": first, "checking": monitor.report(detail=False)["checking"]}


def paced_summary(rows: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    """Per signal, each configuration's median seconds to drift with its range (runs that never reached drift
    counted as missing), and the median of the per-run differences paced − every due count (runs side by side)."""
    signals = [k for k in rows[0] if k not in ("config", "run", "check rounds")]
    out = []
    for signal in signals:
        by = {label: [r[signal] for r in rows if r["config"] == label] for label in labels}
        line: dict[str, Any] = {"signal": signal}
        for label, values in by.items():
            seen = [v for v in values if v is not None]
            spread = f" ({min(seen)}–{max(seen)})" if seen else ""
            line[label] = f"{float(np.median(seen)):.1f}{spread}" if seen else "never"
            line[f"missed: {label}"] = len(values) - len(seen)
        pairs = [(a, b) for a, b in zip(*by.values(), strict=True) if a is not None and b is not None]
        line["paced − every due (median)"] = round(float(np.median([a - b for a, b in pairs])), 2) if pairs else None
        out.append(line)
    return out


def paced(settings: Settings, config: DriftConfig, encoder: OnnxEncoder, rate: float, repeats: int, path: Path) -> int:
    """`--paced`: seconds to drift at `rate` requests/s with the pacing defaults and with checks at every due count."""
    from bench.drift import log_pairs

    logs = [(a, a) for a, _ in log_pairs(PACED_SHIFTED, seed=2)]  # a client that sends each line twice: cosine 1
    pairs = [(p.a, p.b) for p in read_sts("test")[:PACED_NORMAL]] + logs
    a, b = embed(encoder, [p[0] for p in pairs]), embed(encoder, [p[1] for p in pairs])
    vectors, cosines = np.stack([a, b], axis=1), (a * b).sum(axis=1)
    card, sample = encoder.model.card, load_sample(settings.model_dir)
    configs = {
        "paced (defaults)": config,
        "every due count (intervals 0, no rest)": replace(
            config, check_interval_s=0.0, embed_check_interval_s=0.0, cpu_budget=1.0
        ),
    }
    rows = []
    for run in range(repeats):  # alternated, so both see the machine's load alike
        for label, c in configs.items():
            result = paced_run(DriftMonitor(c, card, embedding_sample=sample), vectors, cosines, rate)
            rows.append({"config": label, "run": run, **result["seconds_to_drift"]})
            rows[-1]["check rounds"] = result["checking"]["rounds"]
    print_table(rows, [(k, k) for k in rows[0]])
    summary = paced_summary(rows, list(configs))
    print_table(summary, [(k, k) for k in summary[0]])
    out = {"bench": "drift_paced", "rate": rate, "normal": PACED_NORMAL, "rows": rows, "summary": summary}
    print(json.dumps(out))
    path.write_text(json.dumps(out, indent=1) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="at most this many requests per stream")
    parser.add_argument("--json", type=Path, help=f"where the JSON goes (default {RESULTS.name}, {PACED_RESULTS.name})")
    parser.add_argument("--paced", action="store_true", help="only the wall-time detection at --rate requests/s")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second in --paced")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each configuration in --paced")
    args = parser.parse_args()
    settings = Settings()
    config = DriftConfig.from_settings(settings)
    encoder = OnnxEncoder.from_settings(settings)
    if args.paced:
        return paced(settings, config, encoder, args.rate, args.repeats, args.json or PACED_RESULTS)
    args.json = args.json or RESULTS
    card = encoder.model.card
    sample = load_sample(settings.model_dir)
    model = TokenModel.load(settings.model_dir, encoder.tokenizer.vocab_size)
    tokens = (TokenRates(model.trained, encoder.tokenizer.unk_id, encoder.tokenizer.max_seq_len), model)

    def fresh() -> DriftMonitor:
        return DriftMonitor(config, card, tokens=tokens, embedding_sample=sample)

    rows = []
    started = time.perf_counter()
    test = read_sts("test")[: args.limit]
    rows.append(row("sts-test (file order) vs card", similarity_stream(fresh(), encoder, test)))
    dev = read_sts("dev")[: args.limit]
    replay = fresh()
    a, b = embed(encoder, [p.a for p in dev]), embed(encoder, [p.b for p in dev])
    uploaded = np.stack([a, b], axis=1).reshape(-1, a.shape[1])  # as PUT /drift/baseline embeds pairs: a, b, a, …
    replay.set_baseline("similarity", (a * b).sum(axis=1).tolist(), "upload: sts dev pairs", uploaded)
    rows.append(row("sts-dev uploaded, replayed in order", similarity_stream(replay, encoder, dev)))

    train = [(t, y) for t, y in read_clinc("train") if y != OOS]
    test_rows = [(t, y) for t, y in read_clinc("test") if y != OOS][: args.limit]
    texts, truth = [t for t, _ in test_rows], [y for _, y in test_rows]
    with tempfile.TemporaryDirectory() as tmp:
        registry = FaissCollections(Path(tmp))
        try:
            collection = registry.create("clinc")[0]
            items = [Item(f"train-{i}", text, {"label": label}) for i, (text, label) in enumerate(train)]
            collection.upsert(items, embed(encoder, [t for t, _ in train]))
            streams = (("clinc (file order)", texts), ("clinc typo'd (file order)", with_typos(texts, TYPO_SEED)))
            for name, queries in streams:
                watch, extra = clinc_stream(fresh(), collection, embed(encoder, queries), truth)
                rows.append(row(name, watch, extra))
        finally:
            registry.close()
    rows.append(row("reviews (grouped by source)", reviews_stream(fresh(), encoder, args.limit)))

    columns = [("stream", "stream"), ("requests", "requests"), ("ever_in_drift", "ever in drift")]
    columns += [("first_drift_at", "first drift at"), ("domain", "embeddings vs card (domain)")]
    columns += [("true_accuracy", "true acc"), ("estimated_accuracy", "est. acc")]
    columns += [("accuracy_gap", "gap"), ("window_accuracy_gap_median", "window gap median")]
    columns += [("window_accuracy_gap_max", "window gap max")]
    print_table([{**r, "ever_in_drift": ", ".join(r["ever_in_drift"]) or "none"} for r in rows], columns)
    out = {"bench": "drift_streams", "limit": args.limit, "seconds": round(time.perf_counter() - started, 1)}
    out["rows"] = rows
    print(json.dumps(out))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
