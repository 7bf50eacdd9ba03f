"""Quality and speed of model directories beside all-MiniLM-L6-v2 and a model2vec of it, measured in one run.

Per encoder: STS-B test Spearman (cosine of embeddings), CLINC150 test kNN accuracy (k=10 over train) and
out-of-scope recall (threshold set on CLINC150 val), sentences/s at batch 64 and one-sentence latency; relatedness
on data unlike the training data (Lee news documents, WordSim353, SimLex-999, same-sentiment review pairs); the mean
cosine of word-order/negation contrast pairs (bench/data/word_order.tsv); and, for model directories, how much of
the token table training reached and how many held-back tokens hit a trained row.

    python -m bench.quality [model dirs] [--no-peer] [--no-model2vec] [--json bench/results/quality.json]

Without model dirs: the bundled model and build/model-hcnn, build/model-bilstm where they exist.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import MiniLM, OnnxModel, median_seconds
from bench.peers import systems
from bench.tables import print_table
from service.datasets import read_clinc, read_sts
from service.evaluation import (
    clinc,
    contrast_cosines,
    gensim_test_data,
    read_contrast_pairs,
    read_lee,
    relatedness,
    sts_spearman,
    vocabulary_coverage,
)
from service.settings import DEFAULT_MODEL_DIR

CONTRAST_FILE = Path(__file__).parent / "data" / "word_order.tsv"
COMPARISON_DIRS = ("build/model-hcnn", "build/model-bilstm")


def speed(embed: Callable[[Sequence[str]], object], sentences: list[str]) -> dict[str, float]:
    batches = [sentences[i : i + 64] for i in range(0, len(sentences) - 63, 64)][:20]
    per_batch = median_seconds(lambda: [embed(b) for b in batches], 3) / len(batches)
    one = median_seconds(lambda: [embed([s]) for s in sentences[:100]], 3) / 100
    return {"sent_per_s_b64": round(64 / per_batch, 1), "ms_one": round(one * 1000, 3)}


def held_back_corpora() -> dict[str, list[str]]:
    """Text no bundled model trained on: CLINC150 test and STS-B test (like the training data), Lee news (unlike)."""
    corpora = {
        "clinc_test": [t for t, _ in read_clinc("test")],
        "sts_test": [s for p in read_sts("test") for s in (p.a, p.b)],
    }
    lee = gensim_test_data("lee.cor")
    if lee is not None:
        corpora["lee_news"] = read_lee(lee.parent)[0]
    return corpora


def default_model_dirs() -> list[str]:
    return [str(DEFAULT_MODEL_DIR), *(d for d in COMPARISON_DIRS if Path(d, "encoder.onnx").is_file())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="*")
    parser.add_argument("--no-peer", action="store_true", help="skip all-MiniLM-L6-v2 and model2vec")
    parser.add_argument("--no-model2vec", action="store_true", help="skip the model2vec distilled from MiniLM")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args()
    model2vec = not (args.no_peer or args.no_model2vec)
    encoders = systems(args.model_dirs or default_model_dirs(), minilm=not args.no_peer, model2vec=model2vec)
    sentences = [p.a for p in read_sts("test")]
    contrast = read_contrast_pairs(CONTRAST_FILE)
    corpora = held_back_corpora()
    rows = []
    for system in encoders:
        started = time.perf_counter()
        row = {"model": system.name, "encoder": system.network, "sts_spearman": round(sts_spearman(system), 4)}
        row.update(clinc(system))
        row.update(relatedness(system))
        row.update({f"order_{k}": v for k, v in contrast_cosines(system, contrast).items()})
        if isinstance(system, OnnxModel):
            row.update(vocabulary_coverage(system.encoder.model, corpora))
        row.update(speed(system, sentences))
        row["seconds"] = round(time.perf_counter() - started, 1)
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
    print("\nrelatedness on data unlike the training data; word-order contrast pairs: mean cosine (lower = sees it)")
    print_table(
        rows,
        [
            ("model", "model"),
            ("lee_spearman", "Lee news docs ρ"),
            ("wordsim353_spearman", "WordSim353 ρ"),
            ("simlex999_spearman", "SimLex-999 ρ"),
            ("sentiment_auc", "review same-sentiment AUC"),
            *((f"order_{k}", f"cos {k}") for k in ("all", "swap", "but_not", "from_to", "negation")),
        ],
    )
    print("\nvocabulary: token rows training touched; share of held-back tokens that hit a trained row")
    print_table(
        [r for r in rows if "vocab_rows" in r],
        [
            ("model", "model"),
            ("trained_rows", "trained rows"),
            ("rows_trained_share", "share of table"),
            *((f"hit_{name}", f"hit {name}") for name in corpora),
            ("trained_rows_source", "how known"),
        ],
    )
    summary = {"bench": "quality", "contrast_pairs": len(contrast), "rows": rows}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
