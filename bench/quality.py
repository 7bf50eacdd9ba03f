"""Quality and speed of model directories beside all-MiniLM-L6-v2, measured in one run.

STS-B test Spearman (cosine of embeddings), CLINC150 test kNN accuracy (k=10 over train) and out-of-scope
recall (threshold set on CLINC150 val), sentences/s at batch 64 and one-sentence latency.

    python -m bench.quality models/object2vec-sts-384 [more model dirs] [--no-peer]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import spearmanr

from bench.common import MiniLM, OnnxModel, median_seconds, print_table
from service.datasets import read_clinc, read_sts


def sts_spearman(embed) -> float:
    pairs = read_sts("test")
    a = embed([p.a for p in pairs])
    b = embed([p.b for p in pairs])
    return float(spearmanr((a * b).sum(1), [p.score for p in pairs]).statistic)


def knn(train_vecs: np.ndarray, train_labels: np.ndarray, queries: np.ndarray, k: int = 10):
    """Cosine-weighted vote of the k nearest train items: (label, best support cosine) per query."""
    sims = queries @ train_vecs.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    labels, support = [], []
    for row, idx in enumerate(top):
        votes: dict[str, float] = {}
        for j in idx:
            votes[train_labels[j]] = votes.get(train_labels[j], 0.0) + float(sims[row, j])
        best = max(votes, key=votes.get)  # type: ignore[arg-type]
        labels.append(best)
        support.append(float(sims[row, idx].max()))
    return np.array(labels), np.array(support)


def clinc(embed) -> dict[str, float]:
    train = [(t, y) for t, y in read_clinc("train") if y != "oos"]
    vecs = embed([t for t, _ in train])
    labels = np.array([y for _, y in train])
    val = read_clinc("val")
    _val_pred, val_support = knn(vecs, labels, embed([t for t, _ in val]))
    val_in = np.array([y != "oos" for _, y in val])
    # out of scope when the nearest train item is less similar than 95 % of in-scope val queries' nearest
    threshold = float(np.quantile(val_support[val_in], 0.05))
    test = read_clinc("test")
    pred, support = knn(vecs, labels, embed([t for t, _ in test]))
    gold = np.array([y for _, y in test])
    in_scope = gold != "oos"
    flagged = support < threshold
    return {
        "clinc_acc": round(float((pred[in_scope] == gold[in_scope]).mean()), 4),
        "oos_recall": round(float(flagged[~in_scope].mean()), 4),
        "oos_threshold": round(threshold, 4),
    }


def speed(embed, sentences: list[str]) -> dict[str, float]:
    batches = [sentences[i : i + 64] for i in range(0, len(sentences) - 63, 64)][:20]
    per_batch = median_seconds(lambda: [embed(b) for b in batches], 3) / len(batches)
    one = median_seconds(lambda: [embed([s]) for s in sentences[:100]], 3) / 100
    return {"sent_per_s_b64": round(64 / per_batch, 1), "ms_one": round(one * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="*", default=["models/object2vec-sts-384"])
    parser.add_argument("--no-peer", action="store_true", help="skip all-MiniLM-L6-v2")
    args = parser.parse_args()
    systems = [OnnxModel(d) for d in args.model_dirs]
    if not args.no_peer:
        systems.append(MiniLM())
    sentences = [p.a for p in read_sts("test")]
    rows = []
    for system in systems:
        row = {"model": system.name, "encoder": system.network, "sts_spearman": round(sts_spearman(system), 4)}
        row.update(clinc(system))
        row.update(speed(system, sentences))
        rows.append(row)
    peer = next((r for r in rows if r["model"] == MiniLM.name), None)
    for row in rows:
        if peer:
            row["x_peer"] = round(row["sent_per_s_b64"] / peer["sent_per_s_b64"], 1)
    print_table(
        rows,
        [
            ("model", "model"),
            ("encoder", "encoder"),
            ("sts_spearman", "STS-B test Spearman"),
            ("clinc_acc", "CLINC150 kNN acc"),
            ("oos_recall", "OOS recall"),
            ("sent_per_s_b64", "sent/s @64"),
            ("x_peer", "× MiniLM"),
            ("ms_one", "ms / 1 sentence"),
        ],
    )
    print(json.dumps({"bench": "quality", "rows": rows}))


if __name__ == "__main__":
    main()
