"""Tiny Object2Vec channels and configs the model tests write for themselves."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

VOCAB = 60


def overlap_pairs(n: int, seed: int, classify: bool = False) -> list[dict[str, Any]]:
    """Pairs of short id sequences labelled by how many tokens they share: learnable in a few steps."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a = [rng.randrange(1, VOCAB) for _ in range(rng.randint(2, 8))]
        b = [rng.choice(a) if rng.random() < 0.5 else rng.randrange(1, VOCAB) for _ in range(rng.randint(2, 8))]
        share = len(set(a) & set(b)) / len(set(a) | set(b))
        rows.append({"label": int(share > 0.15) if classify else round(share, 4), "in0": a, "in1": b})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_config(tmp: Path, network: str = "pooled_embedding", **hp: Any) -> dict[str, Any]:
    """A config for a few-second run on the overlap task; `hp` overrides hyperparameters."""
    classify = hp.get("output_layer") == "softmax"
    write_jsonl(tmp / "train.jsonl", overlap_pairs(384, 1, classify))
    write_jsonl(tmp / "validation.jsonl", overlap_pairs(128, 2, classify))
    hyper = {
        "enc0_max_seq_len": "10",
        "enc0_vocab_size": str(VOCAB),
        "enc0_network": network,
        "enc0_token_embedding_dim": "16",
        "enc_dim": "16",
        "enc0_layers": "2" if network == "hcnn" else "auto",
        "mlp_layers": "1",
        "mlp_dim": "16",
        "mlp_activation": "relu",
        "output_layer": "mean_squared_error",
        "comparator_list": "hadamard, abs_diff",
        "learning_rate": "0.01",
        "mini_batch_size": "32",
        "epochs": "3",
    }
    hyper.update({k: str(v) for k, v in hp.items()})
    return {
        "hyperparameters": hyper,
        "channels": {"train": "train.jsonl", "validation": "validation.jsonl"},
        "output_dir": "out",
        "seed": 7,
    }
