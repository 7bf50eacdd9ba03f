"""Intent classification with out-of-scope detection on CLINC150 through the service's classify path, clean and typo'd.

Each model embeds the in-scope train split into a real collection (service.index, flat); every val and test
utterance then goes through `classify` (the route's k-nearest vote weighted by cosine, service.index.classify.vote).
min_score, the support below which the answer is null (out of scope), is chosen on val only, as `o2v index
calibrate` chooses it: the single value maximising the mean of in-scope accuracy and out-of-scope recall. `o2v eval`
(service.evaluation.clinc) votes and chooses alike over the full splits, so its numbers are this table's. Reported on
test: in-scope accuracy of the plain vote and with min_score applied, and out-of-scope recall and precision; then
the same test utterances with 1–2 typing slips each (service.evaluation.with_typos, seeded) against the clean
collection and the clean min_score, as a user's messy input meets a deployed index, and the drop from clean. The
bundled model runs beside all-MiniLM-L6-v2 and a model2vec distilled from it in the same run.

    python -m bench.intent [--model-dir service/model/bundled/object2vec-sts-384] [--k 10] [--limit 500] [--no-peer]
                           [--no-model2vec] [--typo-seed 0] [--json bench/results/intent.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers import systems
from bench.tables import print_table
from service.datasets import read_clinc
from service.evaluation import OOS, choose_min_score, intent_scores, intent_votes, with_typos
from service.index.base import CollectionRegistry
from service.index.calibrate import NO_THRESHOLD
from service.index.classify import classify
from service.index.engines.faiss.registry import FaissCollections
from service.index.engines.faiss.store import Item
from service.settings import DEFAULT_MODEL_DIR

Embed = Callable[[Sequence[str]], np.ndarray]


def every_nth(rows: list, limit: int | None) -> list:
    """At most `limit` rows spread over the split (the splits are grouped by intent)."""
    return rows if not limit or limit >= len(rows) else rows[:: -(-len(rows) // limit)]


def predictions(
    embed: Embed, train: list, query_sets: list[list[str]], k: int, data_dir: Path, store: str = "faiss"
) -> list[tuple[list, np.ndarray]]:
    """(voted labels, supports) for each set of queries, from one collection of the train split on `store`
    (the embedded engine, or Milvus Lite in a file in `data_dir`)."""
    if store == "milvus":
        from service.index.engines.milvus.registry import MilvusCollections

        registry: CollectionRegistry = MilvusCollections(str(data_dir / "milvus.db"), timeout=600)
    else:
        registry = FaissCollections(data_dir)
    try:
        return _predictions(registry.create("clinc")[0], embed, train, query_sets, k)
    finally:
        registry.close()


def _predictions(
    collection: Any, embed: Embed, train: list, query_sets: list[list[str]], k: int
) -> list[tuple[list, np.ndarray]]:
    items = [Item(f"train-{i}", text, {"label": label}) for i, (text, label) in enumerate(train)]
    collection.upsert(items, embed([text for text, _ in train]))
    out = []
    for queries in query_sets:
        results = [classify(collection, v, "label", k, NO_THRESHOLD) for v in embed(queries)]
        out.append(([r.label for r in results], np.array([r.confidence for r in results])))
    return out


def evaluate(name: str, embed: Embed, k: int, limit: int | None, typo_seed: int, store: str = "faiss") -> dict:
    train = every_nth([row for row in read_clinc("train") if row[1] != OOS], limit)
    val, test = every_nth(read_clinc("val"), limit), every_nth(read_clinc("test"), limit)
    test_texts = [t for t, _ in test]
    typo_texts = with_typos(test_texts, typo_seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        queries = [[t for t, _ in val], test_texts, typo_texts]
        (val_labels, val_support), clean, typos = predictions(embed, train, queries, k, Path(tmp), store)
    min_score = choose_min_score(intent_votes(val_labels, val_support, [y for _, y in val]))
    truth = [y for _, y in test]
    result = intent_scores(intent_votes(*clean, truth), min_score)
    typo_result = intent_scores(intent_votes(*typos, truth), min_score)
    label = name if store == "faiss" else f"{name} (Milvus Lite)"
    row = {"model": label, "min_score": round(min_score, 4), **{key: round(v, 4) for key, v in result.items()}}
    for key in ("in_scope_acc", "in_scope_acc_at_min", "oos_recall"):
        row[f"typo_{key}"] = round(typo_result[key], 4)
        row[f"drop_{key}"] = round(result[key] - typo_result[key], 4)
    row["typo_changed"] = round(float(np.mean([a != b for a, b in zip(test_texts, typo_texts, strict=True)])), 4)
    return {**row, "train": len(train), "test": len(test), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR))
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--limit", type=int, help="at most this many rows of each split (a quick check)")
    p.add_argument("--no-peer", action="store_true", help="skip all-MiniLM-L6-v2 and model2vec")
    p.add_argument("--no-model2vec", action="store_true", help="skip the model2vec distilled from MiniLM")
    p.add_argument("--typo-seed", type=int, default=0, help="seed of the typo'd test copy")
    p.add_argument("--milvus", action="store_true", help="also the first model on Milvus Lite (pymilvus needed)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = p.parse_args()
    model2vec = not (args.no_peer or args.no_model2vec)
    models = systems([args.model_dir], minilm=not args.no_peer, model2vec=model2vec)
    rows = [evaluate(m.name, m, args.k, args.limit, args.typo_seed) for m in models]
    if args.milvus:  # the first model again through the Milvus engine: the same votes are expected, and its speed
        rows.append(evaluate(models[0].name, models[0], args.k, args.limit, args.typo_seed, "milvus"))
    columns = [("model", "model"), ("in_scope_acc", "in-scope acc"), ("min_score", "min_score (val)")]
    columns += [("in_scope_acc_at_min", "in-scope acc at min_score"), ("oos_recall", "oos recall")]
    columns += [("oos_precision", "oos precision"), ("train", "train"), ("test", "test")]
    print_table(rows, columns)
    print(f"\nthe test utterances with 1-2 typos each (seed {args.typo_seed}), clean collection and min_score")
    columns = [("model", "model"), ("typo_in_scope_acc", "in-scope acc"), ("drop_in_scope_acc", "drop vs clean")]
    columns += [("typo_in_scope_acc_at_min", "at min_score"), ("drop_in_scope_acc_at_min", "drop vs clean")]
    columns += [("typo_oos_recall", "oos recall"), ("drop_oos_recall", "drop vs clean")]
    columns += [("typo_changed", "utterances changed")]
    print_table(rows, columns)
    summary = {"bench": "intent", "k": args.k, "limit": args.limit, "typo_seed": args.typo_seed, "rows": rows}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
