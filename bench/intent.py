"""Intent classification with out-of-scope detection on CLINC150 through the service's classify path.

Each model embeds the in-scope train split into a real collection (service.index, flat); every val and test
utterance then goes through `classify` (k-nearest vote weighted by cosine). min_score, the support below which
the answer is null (out of scope), is chosen on val only: the value maximising the mean of in-scope accuracy and
out-of-scope recall. Reported on test: in-scope accuracy of the plain vote and with min_score applied, and
out-of-scope recall and precision. The bundled model runs beside all-MiniLM-L6-v2 in the same run.

    python -m bench.intent [--model-dir models/object2vec-sts-384] [--k 10] [--limit 500] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MiniLM, OnnxModel, print_table
from service.datasets import read_clinc
from service.index.classify import classify
from service.index.registry import Collections
from service.index.store import Item
from service.settings import DEFAULT_MODEL_DIR

OOS = "oos"
Embed = Callable[[Sequence[str]], np.ndarray]


def every_nth(rows: list, limit: int | None) -> list:
    """At most `limit` rows spread over the split (the splits are grouped by intent)."""
    return rows if not limit or limit >= len(rows) else rows[:: -(-len(rows) // limit)]


def predictions(embed: Embed, train: list, queries: list, k: int, data_dir: Path) -> tuple[list, np.ndarray]:
    """(voted label, support) per query, from a collection of the train split."""
    collection, _ = Collections(data_dir).create("clinc")
    items = [Item(f"train-{i}", text, {"label": label}) for i, (text, label) in enumerate(train)]
    collection.upsert(items, embed([text for text, _ in train]))
    vectors = embed([text for text, _ in queries])
    results = [classify(collection, v, "label", k, min_score=-1.0) for v in vectors]
    return [r.label for r in results], np.array([r.confidence for r in results])


def scores(labels: list, support: np.ndarray, truth: list, min_score: float) -> dict[str, float]:
    truth_arr = np.array(truth)
    voted = np.array(labels)
    in_scope, oos = truth_arr != OOS, truth_arr == OOS
    rejected = support < min_score
    flagged = int(rejected.sum())
    return {
        "in_scope_acc": float(np.mean(voted[in_scope] == truth_arr[in_scope])),
        "in_scope_acc_at_min": float(np.mean((voted[in_scope] == truth_arr[in_scope]) & ~rejected[in_scope])),
        "oos_recall": float(np.mean(rejected[oos])) if oos.any() else float("nan"),
        "oos_precision": float(rejected[oos].sum() / flagged) if flagged else float("nan"),
    }


def choose_min_score(labels: list, support: np.ndarray, truth: list) -> float:
    """The threshold that maximises (in-scope accuracy with rejections + out-of-scope recall) / 2 on val."""
    candidates = np.unique(np.round(support, 3))

    def balanced(t: float) -> float:
        s = scores(labels, support, truth, t)
        return (s["in_scope_acc_at_min"] + s["oos_recall"]) / 2

    return float(max(candidates, key=balanced))


def evaluate(name: str, embed: Embed, k: int, limit: int | None) -> dict:
    train = every_nth([row for row in read_clinc("train") if row[1] != OOS], limit)
    val, test = every_nth(read_clinc("val"), limit), every_nth(read_clinc("test"), limit)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        val_labels, val_support = predictions(embed, train, val, k, Path(tmp) / "val")
        min_score = choose_min_score(val_labels, val_support, [y for _, y in val])
        test_labels, test_support = predictions(embed, train, test, k, Path(tmp) / "test")
    result = scores(test_labels, test_support, [y for _, y in test], min_score)
    row = {"model": name, "min_score": round(min_score, 3), **{key: round(v, 4) for key, v in result.items()}}
    return {**row, "train": len(train), "test": len(test), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR))
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--limit", type=int, help="at most this many rows of each split (a quick check)")
    p.add_argument("--no-peer", action="store_true", help="skip all-MiniLM-L6-v2")
    args = p.parse_args()
    models: list[tuple[str, Embed]] = [(Path(args.model_dir).name, OnnxModel(args.model_dir))]
    if not args.no_peer:
        models.append((MiniLM.name, MiniLM()))
    rows = [evaluate(name, embed, args.k, args.limit) for name, embed in models]
    columns = [("model", "model"), ("in_scope_acc", "in-scope acc"), ("min_score", "min_score (val)")]
    columns += [("in_scope_acc_at_min", "in-scope acc at min_score"), ("oos_recall", "oos recall")]
    columns += [("oos_precision", "oos precision"), ("train", "train"), ("test", "test")]
    print_table(rows, columns)
    print(json.dumps({"bench": "intent", "k": args.k, "limit": args.limit, "rows": rows}))


if __name__ == "__main__":
    main()
