"""Quality and speed of model directories beside all-MiniLM-L6-v2, measured in one run.

STS-B test Spearman (cosine of embeddings), CLINC150 test kNN accuracy (k=10 over train) and out-of-scope
recall (threshold set on CLINC150 val), sentences/s at batch 64 and one-sentence latency.

    python -m bench.quality models/object2vec-sts-384 [more model dirs] [--no-peer]
"""

from __future__ import annotations

import argparse
import json

from bench.common import MiniLM, OnnxModel, median_seconds, print_table
from service.datasets import read_sts
from service.evaluation import clinc, sts_spearman


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
