"""Drift monitor on real, ordered streams (bench.drift's synthetic runs are shuffled draws): false alarms and
time to detection with the served model, the monitor's settings and its checks after every `check_every` requests.

    python -m bench.drift_streams              # every stream below
    python -m bench.drift_streams --limit 1500 # at most this many requests per stream (a quick check)

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
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
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
from service.encoders.onnx import OnnxEncoder
from service.evaluation import OOS, with_typos
from service.index.base import Item
from service.index.classify import classify, leave_one_out
from service.index.engines.faiss.registry import FaissCollections
from service.index.metadata import canonical
from service.settings import Settings

RESULTS = Path(__file__).parent / "results" / "drift_streams.json"
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

    def request(self, truth: list[bool] | None = None) -> None:
        self.requests += 1
        if self.requests % self.monitor.config.check_every:
            return
        self.monitor.run_due_checks()
        report = self.monitor.report(detail=False)
        statuses = {name: s["status"] for name, s in report["streams"].items()}
        families = (report["embeddings"] or {}).get("families") or {}
        statuses |= {f"embeddings:{name}": family["status"] for name, family in families.items()}
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
    reference = partial(leave_one_out, collection, "label", K, None, 0.0, monitor.config.window * 2)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="at most this many requests per stream")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings = Settings()
    config = DriftConfig.from_settings(settings)
    encoder = OnnxEncoder.from_settings(settings)
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
    columns += [("first_drift_at", "first drift at"), ("true_accuracy", "true acc"), ("estimated_accuracy", "est. acc")]
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
