"""`o2v export`: a trained checkpoint → a model directory (encoder.onnx, scorer.onnx, tokenizer, model card).

The encoder's output is rotated into its principal axes (service/object2vec/rotation.py) when the checkpoint's
validation or train channel is still where its config named it, so that OpenAI's `dimensions` keeps the best
summary; the card records the rotation, or its absence (`encoder.rotation`: null: the first k dimensions are not
ordered by importance).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from service.datasets import file_sha256
from service.drift.baseline import CALIBRATIONS, card_calibrations
from service.drift.config import DriftConfig
from service.drift.tokens import channel_token_rows, trained_mask, write_token_files
from service.object2vec.network import Encoder, Object2Vec
from service.object2vec.train import load_checkpoint, read_checkpoint
from service.settings import Settings
from service.text import TextTokenizer

OPSET = 17
EMBEDDING_DTYPES = ("float32", "float16", "int8")


class QuantizedEmbedding(nn.Module):
    """A token table stored as int8 (symmetric, one scale per row) or float16, widened to float32 on lookup.

    The bert-base vocabulary at 384 floats is 47 MB; int8 rows keep the model directory small while a row's
    cosine to its float original stays above 0.9999.
    """

    table: torch.Tensor  # buffers, registered in __init__
    scale: torch.Tensor

    def __init__(self, weight: torch.Tensor, dtype: str) -> None:
        super().__init__()
        self.embedding_dim = weight.shape[1]
        if dtype == "int8":
            scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
            self.register_buffer("table", torch.round(weight / scale).to(torch.int8))
            self.register_buffer("scale", scale.to(torch.float32))
        else:
            self.register_buffer("table", weight.to(torch.float16))
            self.register_buffer("scale", torch.ones(weight.shape[0], 1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids].to(torch.float32) * self.scale[ids]


class _Scorer(nn.Module):
    """The pair scorer as SageMaker answers it: class probabilities for softmax, the value for regression."""

    def __init__(self, model: Object2Vec) -> None:
        super().__init__()
        self.scorer = model.scorer
        self.softmax = model.hp.output_layer == "softmax"

    def forward(self, emb0: torch.Tensor, emb1: torch.Tensor) -> torch.Tensor:
        out = self.scorer(emb0, emb1)
        return torch.softmax(out, dim=-1) if self.softmax else out


def _for_export(encoder: Encoder, dtype: str) -> Encoder:
    enc = copy.deepcopy(encoder).eval()
    if dtype != "float32":
        enc.embedding = QuantizedEmbedding(enc.embedding.weight.detach(), dtype)  # type: ignore[assignment]
    return enc


def export_encoder(encoder: Encoder, path: Path, dtype: str = "float32") -> None:
    """input_ids int64 [batch, sequence] (0 = padding) → embedding float32 [batch, enc_dim]."""
    example = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]], dtype=torch.int64)
    torch.onnx.export(
        _for_export(encoder, dtype),
        (example,),
        str(path),
        input_names=["input_ids"],
        output_names=["embedding"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def export_scorer(model: Object2Vec, path: Path) -> None:
    """emb0, emb1 float32 [batch, enc_dim] → scores float32 [batch, num_classes or 1]."""
    example = torch.randn(2, model.hp.enc_dim)
    torch.onnx.export(
        _Scorer(model).eval(),
        (example, example),
        str(path),
        input_names=["emb0", "emb1"],
        output_names=["scores"],
        dynamic_axes={"emb0": {0: "batch"}, "emb1": {0: "batch"}, "scores": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def write_token_embeddings(checkpoint_dir: str | Path, vocab_file: str | Path, out: str | Path) -> int:
    """Write enc0's trained token table as a GloVe-format text file keyed by a vocab.json: the pretrained
    embedding file format, so a trained model can seed the next one (`enc0_pretrained_embedding_file`)."""
    table = load_checkpoint(Path(checkpoint_dir) / "checkpoint.pt").enc0.embedding.weight.detach().numpy()
    vocab = json.loads(Path(vocab_file).read_text())
    rows = 0
    with open(out, "w", encoding="utf-8") as fh:
        for token, index in sorted(vocab.items(), key=lambda kv: kv[1]):
            if 0 < index < table.shape[0]:
                fh.write(token + " " + " ".join(f"{v:.6g}" for v in table[index]) + "\n")
                rows += 1
    return rows


def score_distribution(scores: list[float], bins: int = 20) -> dict[str, Any]:
    """The drift baseline: summary, quantiles, a histogram on [-1, 1] and the raw validation cosines."""
    arr = np.asarray(scores, dtype=np.float64)
    counts, edges = np.histogram(arr, bins=bins, range=(-1.0, 1.0))
    qs = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
    return {
        "score": "cosine of the enc0 embeddings of each validation pair",
        "n": int(arr.size),
        "mean": round(float(arr.mean()), 6),
        "std": round(float(arr.std()), 6),
        "quantiles": {str(q): round(float(np.quantile(arr, q)), 6) for q in qs},
        "histogram": {"edges": [round(float(e), 3) for e in edges], "counts": counts.tolist()},
        "scores": [round(float(s), 5) for s in arr],
    }


def find_channel(
    config: dict[str, Any], channels: dict[str, dict[str, str]], bases: list[Path], name: str
) -> Path | None:
    """The checkpoint's `name` channel where its config named it, relative to each of `bases`, when its sha256
    still matches the one training recorded (another file of that name is not what training read)."""
    named = config.get("channels", {}).get(name)
    if not named or name not in channels:
        return None
    for base in bases:
        path = base / named
        if path.is_file() and file_sha256(path) == channels[name]["sha256"]:
            return path
    return None


def channel_rows(
    config: dict[str, Any], channels: dict[str, dict[str, str]], bases: list[Path], limit: int = 20_000
) -> tuple[list[list[int]], str] | None:
    """Token ids (in0 and in1) of the validation channel, else the train channel, the checkpoint was trained on."""
    for name in ("validation", "train"):
        path = find_channel(config, channels, bases, name)
        if path is not None:
            rows = channel_token_rows(path, limit)
            return rows, f"{len(rows)} rows of the {name} channel ({path.name})"
    return None


def write_drift_tokens(
    model_dir: Path, config: dict[str, Any], channels: dict[str, dict[str, str]], bases: list[Path], tokenizer: Any
) -> dict[str, Any] | None:
    """The drift monitor's unseen-token baseline (service/drift/tokens.py): the rows training updated are the ids
    of the train channel, exact (not the corpus upper bound `o2v drift tokens` falls back to), and the baseline
    rates are the validation channel's. None, written nowhere, without both channels or a tokenizer: the stream
    then learns its baseline from live traffic."""
    train = find_channel(config, channels, bases, "train")
    validation = find_channel(config, channels, bases, "validation")
    if tokenizer is None or train is None or validation is None:
        return None
    trained = trained_mask(channel_token_rows(train), tokenizer.vocab_size)
    rows = channel_token_rows(validation)
    source = {
        "from": "train channel token ids, written by o2v export",
        "files": [train.name],
        "validation": f"{len(rows)} rows of the validation channel ({validation.name})",
    }
    lengths = [len(row) for row in rows]  # channel rows are cut already: truncation counts only longer ones
    return write_token_files(model_dir, trained, rows, lengths, tokenizer.unk_id, tokenizer.max_seq_len, source)


def local_options(config: dict[str, Any], shared: bool) -> dict[str, Any]:
    """The training options that are not SageMaker hyperparameters, so hyperparameters.json cannot carry them: a
    reader of the card (or SageMaker) would otherwise take enc1_network=enc0 for two encoders with their own weights."""
    return {
        "share_encoders": shared,
        "early_stopping_metric": config.get("early_stopping_metric", "loss"),
        "early_stopping_reference": config.get("early_stopping_reference", "previous"),
        "align_unseen_tokens": bool(config.get("align_unseen_tokens", False)),
    }


def export_model(
    checkpoint_dir: str | Path,
    model_dir: str | Path,
    embedding_dtype: str = "float32",
    name: str | None = None,
    extra_card: dict[str, Any] | None = None,
    rotate: bool = True,
) -> Path:
    """Write a complete model directory from a training output folder (checkpoint.pt + training_log.json); with
    `rotate`, rotated into its principal axes where the training data is found (see the module docstring)."""
    if embedding_dtype not in EMBEDDING_DTYPES:
        raise ValueError(f"embedding_dtype must be one of {EMBEDDING_DTYPES}, got {embedding_dtype!r}")
    checkpoint_dir, model_dir = Path(checkpoint_dir), Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = read_checkpoint(checkpoint_dir / "checkpoint.pt")
    model = load_checkpoint(checkpoint_dir / "checkpoint.pt", state)
    log = json.loads((checkpoint_dir / "training_log.json").read_text())
    config = state.get("config", {})
    hp = model.hp

    export_encoder(model.enc0, model_dir / "encoder.onnx", embedding_dtype)
    if model.enc1 is not model.enc0:
        export_encoder(model.enc1, model_dir / "encoder1.onnx", embedding_dtype)
    export_scorer(model, model_dir / "scorer.onnx")
    (model_dir / "hyperparameters.json").write_text(json.dumps(hp.to_sagemaker(), indent=1))
    tokenizer = TextTokenizer.from_file(state["tokenizer"], hp.enc0_max_seq_len) if state.get("tokenizer") else None
    if tokenizer is not None:
        tokenizer.save(model_dir)
    bases = [Path.cwd(), checkpoint_dir, checkpoint_dir.parent]
    drift_tokens = write_drift_tokens(model_dir, config, state.get("channels", {}), bases, tokenizer)

    card: dict[str, Any] = {
        "name": name or model_dir.name,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "framework": "object2vec-service (PyTorch training, ONNX inference)",
        "encoder": {
            "network": hp.enc0_network,
            "enc_dim": hp.enc_dim,
            "max_seq_len": hp.enc0_max_seq_len,
            "vocab_size": hp.enc0_vocab_size,
            "embedding_dtype": embedding_dtype,
            "input": "input_ids int64 [batch, sequence], 0 = padding",
            "output": "embedding float32 [batch, enc_dim], not normalised",
        },
        "scorer": {"output_layer": hp.output_layer, "comparator_list": hp.comparator_list},
        "hyperparameters": hp.to_sagemaker(),
        "local_options": local_options(config, shared=model.enc1 is model.enc0),
        "training": {
            "seed": log.get("seed"),
            "epochs_run": len(log.get("epochs", [])),
            "best_epoch": log.get("best_epoch"),
            "stopped_early": log.get("stopped_early"),
            "train_seconds": log.get("train_seconds"),
            "cosine_loss_weight": config.get("cosine_loss_weight", 0.0),
            "ignored_hyperparameters": log.get("ignored_hyperparameters", {}),
            "history": log.get("epochs", []),
        },
        "metrics": {k: log[k] for k in ("validation", "test") if k in log},
        "data_sources": config.get("data_sources", []),
        "channels": state.get("channels", {}),
        "validation_score_distribution": score_distribution(log.get("validation_scores") or [0.0]),
        "drift_tokens": drift_tokens,
    }
    card.update(extra_card or {})
    card["validation_score_distribution"][CALIBRATIONS] = card_calibrations(card, DriftConfig.from_settings(Settings()))
    card["files"] = {
        p.name: file_sha256(p)
        for p in sorted(model_dir.iterdir())
        if p.suffix in (".onnx", ".json") and p.name != "model_card.json"
    }
    card["encoder"]["rotation"] = None
    (model_dir / "model_card.json").write_text(json.dumps(card, indent=1))
    found = channel_rows(config, state.get("channels", {}), bases)
    if rotate and found is not None:
        # late: onnx and onnxruntime cost about 1 CPU-s to import, which a refused checkpoint, export-embeddings and
        # an export without its channels never use
        from service.object2vec.rotation import rotate_model_dir

        rotate_model_dir(model_dir, *found)
    return model_dir
