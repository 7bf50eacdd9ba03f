"""`o2v train CONFIG`: train an Object2Vec model on JSON Lines channels, with SageMaker's early stopping.

The config names the SageMaker hyperparameters, the channels and a few local options (seed, output directory,
an optional cosine loss); see configs/*.json. Training writes checkpoint.pt and training_log.json.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from service.datasets import file_sha256
from service.model.hyperparameters import Hyperparameters, parse_hyperparameters
from service.object2vec.data import PairData, batches, read_jsonl, with_negatives
from service.object2vec.network import PAD_ID, Object2Vec, load_pretrained_embeddings

LOCAL_OPTIONS = {
    "hyperparameters",
    "channels",
    "auxiliary",
    "tokenizer",
    "output_dir",
    "seed",
    "early_stopping",
    "early_stopping_metric",
    "early_stopping_reference",
    "align_unseen_tokens",
    "share_encoders",
    "cosine_loss_weight",
    "evaluate_train",
    "threads",
    "data_sources",
    "description",
}


# Validation numbers early stopping and the best-epoch choice may watch: the loss (SageMaker's choice) or a
# Spearman, which is what an embedding's users see (the loss also grades the cosines' scale, which ranking ignores).
WATCHABLE = {"loss": 1.0, "spearman_cosine": -1.0}
# What an epoch must beat by early_stopping_tolerance: the epoch before (SageMaker: "between consecutive epochs") or
# the best so far (stricter: a value that wobbles without getting better still runs out of patience).
REFERENCES = ("previous", "best")


class ConfigError(ValueError):
    """A training config that cannot run; the message names the key."""


@dataclass
class TrainConfig:
    """A parsed training config; relative paths are resolved against the config file's folder."""

    hp: Hyperparameters
    channels: dict[str, Path]
    output_dir: Path
    auxiliary: Path | None = None
    tokenizer: Path | None = None
    seed: int = 0
    early_stopping: bool = True
    early_stopping_metric: str = "loss"
    early_stopping_reference: str = "previous"
    align_unseen_tokens: bool = False
    share_encoders: bool = False
    cosine_loss_weight: float = 0.0
    evaluate_train: bool = False
    threads: int | None = None
    data_sources: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, output_dir: str | Path | None = None) -> TrainConfig:
        path = Path(path)
        raw = json.loads(path.read_text())
        return cls.from_dict(raw, path.parent, output_dir)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Path, output_dir: str | Path | None = None) -> TrainConfig:
        unknown = set(raw) - LOCAL_OPTIONS
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(LOCAL_OPTIONS)}")
        if "train" not in raw.get("channels", {}):
            raise ConfigError("config 'channels' must name a 'train' file (and optionally 'validation', 'test')")
        extra = set(raw["channels"]) - {"train", "validation", "test"}
        if extra:
            raise ConfigError(f"unknown channels {sorted(extra)}; Object2Vec reads train, validation and test")
        weight = float(raw.get("cosine_loss_weight", 0.0))
        if not 0.0 <= weight <= 100.0:
            raise ConfigError("config 'cosine_loss_weight' must be in [0, 100]")

        metric = str(raw.get("early_stopping_metric", "loss"))
        if metric not in WATCHABLE:
            raise ConfigError(f"config 'early_stopping_metric' must be one of {sorted(WATCHABLE)}, not '{metric}'")

        reference = str(raw.get("early_stopping_reference", "previous"))
        if reference not in REFERENCES:
            raise ConfigError(f"config 'early_stopping_reference' must be one of {list(REFERENCES)}, not '{reference}'")
        hp = parse_hyperparameters(raw.get("hyperparameters", {}))
        share = bool(raw.get("share_encoders", False))
        if share and hp.enc1_network != "enc0":
            raise ConfigError(f"config 'share_encoders' needs enc1_network=enc0, not {hp.enc1_network}")

        def resolve(p: str | None) -> Path | None:
            return None if p is None else (base / p).resolve()

        out = Path(output_dir) if output_dir else resolve(raw.get("output_dir", "output"))
        return cls(
            hp=hp,
            channels={k: resolve(v) for k, v in raw["channels"].items()},  # type: ignore[misc]
            output_dir=out,  # type: ignore[arg-type]
            auxiliary=resolve(raw.get("auxiliary")),
            tokenizer=resolve(raw.get("tokenizer")),
            seed=int(raw.get("seed", 0)),
            early_stopping=bool(raw.get("early_stopping", True)),
            early_stopping_metric=metric,
            early_stopping_reference=reference,
            align_unseen_tokens=bool(raw.get("align_unseen_tokens", False)),
            share_encoders=share,
            cosine_loss_weight=weight,
            evaluate_train=bool(raw.get("evaluate_train", False)),
            threads=raw.get("threads"),
            data_sources=list(raw.get("data_sources", [])),
            raw=raw,
        )


class EarlyStopping:
    """Stop after `patience` consecutive epochs whose validation loss did not fall by at least `tolerance` below
    the reference: the previous epoch's loss (SageMaker's wording, the default) or the best so far."""

    def __init__(self, patience: int, tolerance: float, reference: str = "previous") -> None:
        self.patience = patience
        self.tolerance = tolerance
        self.reference = reference
        self.best = self.previous = math.inf
        self.bad_epochs = 0

    def step(self, loss: float) -> bool:
        """Record one epoch's loss; True means stop now."""
        improved = loss <= (self.best if self.reference == "best" else self.previous) - self.tolerance
        self.best, self.previous = min(self.best, loss), loss
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return self.bad_epochs >= self.patience


def seed_everything(seed: int) -> random.Random:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return random.Random(seed)


def load_channel(path: Path, hp: Hyperparameters) -> PairData:
    s0, s1 = hp.encoder(0), hp.encoder(1)
    classes = hp.num_classes if hp.output_layer == "softmax" else None
    return read_jsonl(path, (s0["vocab_size"], s1["vocab_size"]), (s0["max_seq_len"], s1["max_seq_len"]), classes)


def _pretrained(cfg: TrainConfig) -> dict[int, torch.Tensor]:
    """Load enc*_pretrained_embedding_file from the auxiliary folder, keyed through enc*_vocab_file."""
    tables: dict[int, torch.Tensor] = {}
    for side in (0, 1):
        s = cfg.hp.encoder(side)
        if (side == 1 and cfg.share_encoders) or not s["pretrained_embedding_file"]:
            continue
        if side == 1 and s == cfg.hp.encoder(0):  # enc1_network=enc0: enc1 starts from enc0's table, read once
            tables[1] = tables[0]
            continue
        if cfg.auxiliary is None or not s["vocab_file"]:
            raise ConfigError(
                f"enc{side}_pretrained_embedding_file needs an 'auxiliary' folder and enc{side}_vocab_file"
            )
        vocab = json.loads((cfg.auxiliary / s["vocab_file"]).read_text())
        tables[side] = load_pretrained_embeddings(
            cfg.auxiliary / s["pretrained_embedding_file"], vocab, s["vocab_size"], s["token_embedding_dim"]
        )
    return tables


def align_unseen_tokens(embedding: torch.nn.Embedding, start: torch.Tensor, seen: torch.Tensor) -> int:
    """Move the rows training never touched into the trained rows' space; return how many were moved.

    A token absent from the training pairs keeps its pretrained vector while every trained row has moved, so a
    sentence with new words mixes two spaces. A ridge-regularised affine map fitted from the trained rows' pretrained
    vectors to their trained vectors carries the untouched rows across (the padding row stays zero).
    """
    unseen = ~seen
    unseen[PAD_ID] = False
    if not unseen.any() or int(seen.sum()) <= start.shape[1]:
        return 0
    weight = embedding.weight.data
    ones = torch.ones(len(start), 1, dtype=start.dtype)
    x = torch.cat([start, ones], dim=1).double()
    known = x[seen]
    fit = torch.linalg.solve(known.T @ known + torch.eye(x.shape[1], dtype=x.dtype), known.T @ weight[seen].double())
    weight[unseen] = (x[unseen] @ fit).to(weight.dtype)
    return int(unseen.sum())


def _align_tables(model: Object2Vec, data: PairData, tables: dict[int, torch.Tensor]) -> int:
    """align_unseen_tokens for each distinct token table that started pretrained. A table's seen rows are the tokens
    of the inputs that go through it: in0 and in1 when the encoders (or their tables) are shared, else its own."""
    encoders = (model.enc0, model.enc1)
    done: list[torch.nn.Module] = []
    moved = 0
    for side, start in tables.items():
        embedding = encoders[side].embedding
        if any(embedding is d for d in done):
            continue
        done.append(embedding)
        seen = torch.zeros(start.shape[0], dtype=torch.bool)
        for enc, rows in zip(encoders, (data.in0, data.in1), strict=True):
            if enc.embedding is embedding:
                seen[torch.tensor([t for row in rows for t in row], dtype=torch.long)] = True
        moved += align_unseen_tokens(embedding, start, seen)
    return moved


def _optimizers(model: Object2Vec, hp: Hyperparameters) -> list[torch.optim.Optimizer]:
    params = [p for p in model.parameters() if p.requires_grad]
    sparse = [p for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse for p in m.parameters()]
    sparse = [p for p in sparse if p.requires_grad]
    dense = [p for p in params if all(p is not s for s in sparse)]
    lr, wd = hp.learning_rate, hp.weight_decay
    make = {
        "adam": lambda ps: torch.optim.Adam(ps, lr=lr, weight_decay=wd),
        "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=lr, weight_decay=wd),
        "sgd": lambda ps: torch.optim.SGD(ps, lr=lr, weight_decay=wd),
        "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=lr, weight_decay=wd),
        "adadelta": lambda ps: torch.optim.Adadelta(ps, lr=lr, weight_decay=wd),
    }
    out = [make[hp.optimizer](dense)] if dense else []
    if sparse:
        sparse_make = {
            "adam": lambda ps: torch.optim.SparseAdam(ps, lr=lr),
            "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=lr),
            "sgd": lambda ps: torch.optim.SGD(ps, lr=lr),
        }
        if hp.optimizer not in sparse_make:
            raise ConfigError("token_embedding_storage_type=row_sparse works with optimizer adam, adagrad or sgd")
        out.append(sparse_make[hp.optimizer](sparse))
    return out


def pair_loss(
    model: Object2Vec, out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, cos_w: float
) -> torch.Tensor:
    """Object2Vec's loss (cross-entropy or MSE), plus cos_w × MSE between the encodings' cosine and the label."""
    loss = F.cross_entropy(out, y.long()) if model.hp.output_layer == "softmax" else F.mse_loss(out.squeeze(-1), y)
    if cos_w > 0:
        loss = loss + cos_w * F.mse_loss(F.cosine_similarity(a, b, dim=-1), y)
    return loss


@torch.no_grad()
def evaluate(model: Object2Vec, data: PairData, cos_w: float, batch_size: int = 1024) -> dict[str, Any]:
    """Loss and SageMaker's metric (accuracy or mean_squared_error) plus Spearman of the encodings' cosine.

    Pairs are read in length buckets (cheaper padding), so `cosines` is a distribution, not in file order.
    """
    from scipy.stats import spearmanr  # late: `o2v export` and adaptation import this module but never evaluate

    model.eval()
    total, outs, cosines, labels = 0.0, [], [], []
    for x0, x1, y in batches(data, batch_size, None, bucket_width=1):
        out, a, b = model(x0, x1)
        total += float(pair_loss(model, out, a, b, y, cos_w)) * len(y)
        outs.append(out)
        cosines.append(F.cosine_similarity(a, b, dim=-1))
        labels.append(y)
    out, cos, y = torch.cat(outs), torch.cat(cosines), torch.cat(labels)
    metrics: dict[str, Any] = {"loss": total / len(data)}
    if model.hp.output_layer == "softmax":
        metrics["accuracy"] = float((out.argmax(-1) == y.long()).float().mean())
        metrics["cross_entropy"] = float(F.cross_entropy(out, y.long()))
    else:
        metrics["mean_squared_error"] = float(F.mse_loss(out.squeeze(-1), y))
        metrics["spearman_score"] = float(spearmanr(out.squeeze(-1).numpy(), y.numpy()).statistic)
    metrics["spearman_cosine"] = float(spearmanr(cos.numpy(), y.numpy()).statistic) if len(y) > 2 else float("nan")
    metrics["cosines"] = cos.numpy()
    return metrics


def _public(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in metrics.items() if k != "cosines"}


def train(
    cfg: TrainConfig, progress: bool = True, on_epoch: Callable[[int, dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train, keep the best epoch by the watched validation number, write checkpoint.pt and training_log.json.

    `on_epoch(epoch, row)` sees each epoch's log row (with its validation metrics); a tuner prunes a trial by
    raising from it, which ends training without writing anything. Returns the log.
    """
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    rng = seed_everything(cfg.seed)
    hp = cfg.hp
    data = {name: load_channel(path, hp) for name, path in cfg.channels.items()}
    train_data = with_negatives(data["train"], hp.negative_sampling_rate, rng)
    tables = _pretrained(cfg)
    if cfg.align_unseen_tokens and 0 not in tables:
        raise ConfigError("'align_unseen_tokens' needs an enc0_pretrained_embedding_file to start from")
    model = Object2Vec(hp, tables, cfg.share_encoders)
    optimizers = _optimizers(model, hp)
    stopper = EarlyStopping(hp.early_stopping_patience, hp.early_stopping_tolerance, cfg.early_stopping_reference)
    monitor = data.get("validation")
    log: dict[str, Any] = {"hyperparameters": hp.to_sagemaker(), "seed": cfg.seed, "epochs": []}
    if hp.ignored:
        log["ignored_hyperparameters"] = hp.ignored
    best_state, best_loss, best_epoch = None, math.inf, 0
    started = time.time()
    for epoch in range(1, hp.epochs + 1):
        model.train()
        running, seen = 0.0, 0
        steps = batches(train_data, hp.mini_batch_size, rng, hp.bucket_width)
        total = math.ceil(len(train_data) / hp.mini_batch_size)
        for x0, x1, y in tqdm(steps, total=total, desc=f"epoch {epoch}/{hp.epochs}", disable=not progress):
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            out, a, b = model(x0, x1)
            loss = pair_loss(model, out, a, b, y, cfg.cosine_loss_weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}: loss became {float(loss)}; lower learning_rate")
            loss.backward()
            for opt in optimizers:
                opt.step()
            running += float(loss.detach()) * len(y)
            seen += len(y)
        row: dict[str, Any] = {"epoch": epoch, "train_loss": running / seen, "seconds": round(time.time() - started, 1)}
        if cfg.evaluate_train:
            row["train"] = _public(evaluate(model, data["train"], cfg.cosine_loss_weight))
        watched = row["train_loss"]
        if monitor is not None:
            row["validation"] = _public(evaluate(model, monitor, cfg.cosine_loss_weight))
            metric = cfg.early_stopping_metric
            watched = WATCHABLE[metric] * row["validation"][metric]
        log["epochs"].append(row)
        if progress:
            tqdm.write(json.dumps(row))
        if on_epoch is not None:
            on_epoch(epoch, row)
        if watched < best_loss:
            best_loss, best_epoch, best_state = watched, epoch, copy.deepcopy(model.state_dict())
        if cfg.early_stopping and stopper.step(watched):
            log["stopped_early"] = epoch
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    log["best_epoch"] = best_epoch
    if cfg.align_unseen_tokens:
        log["aligned_unseen_tokens"] = _align_tables(model, data["train"], tables)
    log["train_seconds"] = round(time.time() - started, 1)
    for name in ("validation", "test"):
        if name in data:
            metrics = evaluate(model, data[name], cfg.cosine_loss_weight)
            log[name] = _public(metrics)
            if name == "validation":
                log["validation_scores"] = [round(float(c), 5) for c in metrics["cosines"]]
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyperparameters": hp.to_sagemaker(),
            "share_encoders": cfg.share_encoders,
            "config": cfg.raw,
            "tokenizer": str(cfg.tokenizer) if cfg.tokenizer else None,
            "channels": {k: {"file": p.name, "sha256": file_sha256(p)} for k, p in cfg.channels.items()},
        },
        cfg.output_dir / "checkpoint.pt",
    )
    (cfg.output_dir / "training_log.json").write_text(json.dumps(log, indent=1))
    return log


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """checkpoint.pt as `train` saved it (tensors, dicts, lists, strings, numbers) and nothing else: a checkpoint is
    a file a user can hand over, and a full unpickle runs whatever code it names, so only PyTorch's allow-listed
    types load (`weights_only=True`); anything else is a ValueError naming the file."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not a checkpoint `o2v train` wrote (refused to unpickle it: {reason})") from exc
    if not isinstance(state, dict) or "state_dict" not in state or "hyperparameters" not in state:
        raise ValueError(f"{path}: not a checkpoint `o2v train` wrote (no state_dict and hyperparameters)")
    return state


def load_checkpoint(path: str | Path, state: dict[str, Any] | None = None) -> Object2Vec:
    """Rebuild a trained model from checkpoint.pt (pretrained tables come back with the state dict); `state` is
    the checkpoint already read by `read_checkpoint`.

    A checkpoint from before `share_encoders` existed shared enc1 whenever enc1_network=enc0, so that is its default.
    """
    state = state if state is not None else read_checkpoint(path)
    hp = parse_hyperparameters(state["hyperparameters"])
    model = Object2Vec(hp, share_encoders=state.get("share_encoders", hp.enc1_network == "enc0"))
    model.load_state_dict(state["state_dict"])
    return model.eval()
