"""Regularization against overfitting, shown: the same small Object2Vec trained twice on a small subset.

Once with dropout=0, weight_decay=0 and no early stopping, once with dropout, weight_decay and SageMaker's early
stopping. Prints the train/validation loss gap and validation Spearman of both (STS-B train subset → STS-B dev,
gold scores / 5 as regression labels).

    python -m bench.overfitting [--pairs 1000] [--epochs 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.tables import print_table
from service.datasets import read_sts
from service.object2vec.train import TrainConfig, train
from service.settings import DEFAULT_MODEL_DIR
from service.text import TextTokenizer

RUNS: dict[str, dict[str, Any]] = {
    "unregularized": {"dropout": "0.0", "weight_decay": "0.0", "early_stopping": False},
    "regularized": {"dropout": "0.3", "weight_decay": "0.00001", "early_stopping": True},
}


def hyperparameters(vocab_size: int, network: str = "hcnn", epochs: int = 30) -> dict[str, str]:
    """The small model both runs train (bench.tuning tunes the same one): 64-d tokens and encodings, MLP 2 x 128."""
    return {
        "enc0_max_seq_len": "64",
        "enc0_vocab_size": str(vocab_size),
        "enc0_network": network,
        "enc0_layers": "2",
        "enc0_token_embedding_dim": "64",
        "enc_dim": "64",
        "comparator_list": "hadamard, abs_diff",
        "mlp_layers": "2",
        "mlp_dim": "128",
        "mlp_activation": "relu",
        "output_layer": "mean_squared_error",
        "learning_rate": "0.002",
        "mini_batch_size": "32",
        "epochs": str(epochs),
        "early_stopping_patience": "3",
        "early_stopping_tolerance": "0.001",
    }


def write_channel(path: Path, pairs, tokenizer: TextTokenizer) -> None:
    ids0 = tokenizer.encode([p.a for p in pairs])
    ids1 = tokenizer.encode([p.b for p in pairs])
    with open(path, "w") as fh:
        for a, b, p in zip(ids0, ids1, pairs, strict=True):
            fh.write(json.dumps({"label": p.score / 5.0, "in0": a, "in1": b}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000, help="training pairs taken from STS-B train")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--network", default="hcnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tokenizer = TextTokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json", 64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_channel(work / "train.jsonl", read_sts("train")[: args.pairs], tokenizer)
        write_channel(work / "validation.jsonl", read_sts("dev"), tokenizer)
        for name, reg in RUNS.items():
            hp = hyperparameters(tokenizer.vocab_size, args.network, args.epochs)
            hp.update(dropout=reg["dropout"], weight_decay=reg["weight_decay"])
            config = {
                "hyperparameters": hp,
                "channels": {"train": "train.jsonl", "validation": "validation.jsonl"},
                "output_dir": f"out-{name}",
                "seed": args.seed,
                "early_stopping": reg["early_stopping"],
                "early_stopping_reference": "best",  # docs/model.md's runs: patience counted against the best epoch
                "share_encoders": True,  # and one siamese encoder (enc1_network=enc0 alone copies the architecture)
                "evaluate_train": True,
                "threads": 1,
            }
            log = train(TrainConfig.from_dict(config, work), progress=False)
            best = log["epochs"][log["best_epoch"] - 1]
            last = log["epochs"][-1]
            kept = last if not reg["early_stopping"] else best
            rows.append(
                {
                    "run": name,
                    "dropout": hp["dropout"],
                    "weight_decay": hp["weight_decay"],
                    "early_stopping": reg["early_stopping"],
                    "epochs_run": len(log["epochs"]),
                    "train_loss": round(kept["train"]["loss"], 4),
                    "val_loss": round(kept["validation"]["loss"], 4),
                    "gap": round(kept["validation"]["loss"] - kept["train"]["loss"], 4),
                    "val_spearman": round(kept["validation"]["spearman_score"], 4),
                    "val_spearman_cosine": round(kept["validation"]["spearman_cosine"], 4),
                }
            )
    print_table(
        rows,
        [
            ("run", "run"),
            ("dropout", "dropout"),
            ("weight_decay", "weight_decay"),
            ("early_stopping", "early stop"),
            ("epochs_run", "epochs"),
            ("train_loss", "train MSE"),
            ("val_loss", "val MSE"),
            ("gap", "gap"),
            ("val_spearman", "val Spearman (score)"),
            ("val_spearman_cosine", "val Spearman (cosine)"),
        ],
    )
    print(json.dumps({"bench": "overfitting", "pairs": args.pairs, "network": args.network, "rows": rows}))


if __name__ == "__main__":
    main()
