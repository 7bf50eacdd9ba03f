"""Adaptation: fine-tune a served Object2Vec on a team's labelled utterances and export a model directory.

The parent's weights come back from its own ONNX files (`recover`): the token table (int8 rows × scale, float16 or
float32) of encoder.onnx and the comparator MLP of scorer.onnx, with the principal-axes rotation left out (it is
recomputed on export), so every model directory this service serves can be a parent, and no pickle is read.

Training uses Object2Vec's own formulation: in0 = an utterance, in1 = another utterance of the same label
(label 1) or, `negative_sampling_rate` times per positive, of another label (label 0); the encoders are shared (the
parent's siamese encoder). The loss is the parent's output layer (mean_squared_error on the pair score, or
cross-entropy for softmax) plus `cosine_loss_weight` × MSE between the embeddings' cosine and the label, because
search and classify read the cosine, plus (local option `in_batch_temperature`, 0.05; 0: off) a softmax over
in-batch negatives: each positive pair's in0 against every other positive pair's in1 in the mini-batch (same-label
ones left out), which is Object2Vec's negative sampling with the batch as the sample and gives the kNN vote many
hard negatives per step (CLINC150 validation kNN 0.93 → 0.945, see docs/model.md).
Out-of-scope items (`oos_label`) are only ever in0 of negative pairs: they
belong to no class. Pairs are drawn afresh each epoch from a seeded generator. Early stopping (SageMaker's
`early_stopping_patience` / `early_stopping_tolerance`, compared with the best epoch so far) watches the held-out
split's kNN accuracy, the number a team's classify route will see; the best epoch is kept.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from service.datasets import file_sha256
from service.evaluation import intent_scores, knn
from service.index.calibrate import NO_THRESHOLD, Votes, fit
from service.model.hyperparameters import Hyperparameters, parse_hyperparameters
from service.model.labelled import Labelled, check_labelled
from service.model.model_dir import ModelDir
from service.object2vec.data import pad
from service.object2vec.export import export_encoder, export_scorer
from service.object2vec.network import Object2Vec
from service.object2vec.rotation import rotate_model_dir
from service.object2vec.train import EarlyStopping, _optimizers, align_unseen_tokens, pair_loss, seed_everything
from service.text import TextTokenizer

# What adaptation changes in the parent's SageMaker map unless the request says otherwise: a fine-tune, not a
# training from scratch (few epochs, patience on the held-out kNN accuracy, the best epoch kept), with dropout
# against memorising a small set. With the in-batch softmax one sampled negative per positive is enough (the batch
# supplies the rest) and makes an epoch 2.5× cheaper than 3; learning_rate 0.01 reached CLINC150's best validation
# kNN accuracy in 2 epochs where 0.005 needed 3+ (measured, docs/model.md).
ADAPT_DEFAULTS: dict[str, str] = {
    "epochs": "10",
    "learning_rate": "0.01",
    "mini_batch_size": "128",
    "negative_sampling_rate": "1",
    "dropout": "0.1",
    "weight_decay": "0.0",
    "early_stopping_patience": "3",
    "early_stopping_tolerance": "0.001",
}
# SageMaker hyperparameters a request may set; the architecture stays the parent's (its weights must fit).
TUNABLE = (*ADAPT_DEFAULTS, "optimizer", "bucket_width")
DEFAULT_OPTIONS: dict[str, Any] = {
    "cosine_loss_weight": 4.0,
    "align_unseen_tokens": False,
    "k": 10,
    "in_batch_temperature": 0.05,
}


class AdaptError(ValueError):
    """A parent or request that cannot be adapted; the message says why."""


class Cancelled(Exception):
    """Raised from the progress callback to stop training (the job was cancelled); nothing is written."""


# --- the parent's weights from its ONNX files ---------------------------------------------------------------------


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _token_table(weights: dict[str, np.ndarray], vocab: int, dim: int) -> np.ndarray:
    """The token table as float32: `embedding.weight`, or the export's `embedding.table` (int8 / float16) with its
    per-row `embedding.scale`."""
    if "embedding.weight" in weights:
        return weights["embedding.weight"].astype(np.float32)
    table = weights.get("embedding.table")
    if table is None or table.shape != (vocab, dim):
        raise AdaptError(f"encoder.onnx holds no ({vocab}, {dim}) token table (embedding.weight or embedding.table)")
    scale = weights.get("embedding.scale", np.ones((vocab, 1), np.float32))
    return table.astype(np.float32) * scale.astype(np.float32)


def recover(model: ModelDir) -> Object2Vec:
    """The parent as a torch Object2Vec, from encoder.onnx and scorer.onnx; its embeddings equal the served ones up to
    the card's rotation (checked in the tests). Only pooled_embedding encoders shared by both inputs come back."""
    hp = model.hp
    if hp.enc0_network != "pooled_embedding" or (model.path / "encoder1.onnx").is_file():
        raise AdaptError(
            f"{model.name}: only a pooled_embedding encoder shared by in0 and in1 can be adapted "
            f"(this one is {hp.enc0_network}{', with its own encoder1.onnx' if hp.enc1_network != 'enc0' else ''})"
        )
    if model.scorer_file is None:
        raise AdaptError(f"{model.name}: scorer.onnx is missing, so the parent's comparator MLP cannot be recovered")
    net = Object2Vec(_parent_hp(hp), share_encoders=True)
    dim = hp.enc0_token_embedding_dim
    table = _token_table(_initializers(model.path / "encoder.onnx"), hp.enc0_vocab_size, dim)
    net.enc0.embedding.weight.data.copy_(torch.from_numpy(table))
    scorer = {k.removeprefix("scorer."): v for k, v in _initializers(model.scorer_file).items()}
    state = net.scorer.state_dict()
    missing = [k for k in state if k not in scorer]
    if missing:
        raise AdaptError(f"{model.name}: scorer.onnx lacks {missing} (exported by another tool?)")
    net.scorer.load_state_dict({k: torch.from_numpy(np.array(scorer[k])) for k in state})
    return net.eval()


def _parent_hp(hp: Hyperparameters, overrides: Mapping[str, Any] | None = None) -> Hyperparameters:
    """The parent's map without the pretrained-file entries (the parent itself is the start), with `overrides`."""
    raw = {k: v for k, v in hp.to_sagemaker().items() if not k.endswith(("pretrained_embedding_file", "vocab_file"))}
    raw.update({k: str(v) for k, v in (overrides or {}).items()})
    return parse_hyperparameters(raw)


def rotation_of(model: ModelDir) -> np.ndarray | None:
    """The card's principal-axes rotation as encoder.onnx applies it (None when the model is not rotated)."""
    weights = _initializers(model.path / "encoder.onnx")
    names = sorted(n for n in weights if n.startswith("pca_rotation"))
    if not names:
        return None
    out = weights[names[0]]
    for name in names[1:]:
        out = out @ weights[name]
    return out


# --- training --------------------------------------------------------------------------------------------------


@dataclass
class AdaptConfig:
    """Hyperparameters (SageMaker's names, over ADAPT_DEFAULTS) and the local options of an adaptation."""

    hyperparameters: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    threads: int = 1
    cosine_loss_weight: float = DEFAULT_OPTIONS["cosine_loss_weight"]
    align_unseen_tokens: bool = DEFAULT_OPTIONS["align_unseen_tokens"]
    k: int = DEFAULT_OPTIONS["k"]
    in_batch_temperature: float = DEFAULT_OPTIONS["in_batch_temperature"]

    @classmethod
    def from_options(cls, hyperparameters: Mapping[str, Any], options: Mapping[str, Any]) -> AdaptConfig:
        """The request's local options, checked: seed, threads, cosine_loss_weight, align_unseen_tokens, k."""
        allowed = {"seed", "threads", *DEFAULT_OPTIONS}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise AdaptError(f"unknown options {unknown}; allowed: {sorted(allowed)}")
        weight = float(options.get("cosine_loss_weight", DEFAULT_OPTIONS["cosine_loss_weight"]))
        if not 0.0 <= weight <= 100.0:
            raise AdaptError("option 'cosine_loss_weight' must be in [0, 100]")
        k = int(options.get("k", DEFAULT_OPTIONS["k"]))
        if not 1 <= k <= 100:
            raise AdaptError("option 'k' must be in [1, 100]")
        temperature = float(options.get("in_batch_temperature", DEFAULT_OPTIONS["in_batch_temperature"]))
        if not 0.0 <= temperature <= 10.0:
            raise AdaptError("option 'in_batch_temperature' must be in [0, 10] (0: off)")
        cfg = cls(
            dict(hyperparameters),
            int(options.get("seed", 0)),
            int(options.get("threads", 1)),
            weight,
            bool(options.get("align_unseen_tokens", DEFAULT_OPTIONS["align_unseen_tokens"])),
            k,
            temperature,
        )
        parse_hyperparameters({"enc0_max_seq_len": "1", "enc0_vocab_size": "2", **cfg.sagemaker()})  # names, ranges
        return cfg

    def sagemaker(self) -> dict[str, str]:
        unknown = sorted(set(self.hyperparameters) - set(TUNABLE))
        if unknown:
            raise AdaptError(
                f"hyperparameters {unknown} cannot change in an adaptation (the architecture is the parent's); "
                f"these can: {', '.join(TUNABLE)}"
            )
        return {**ADAPT_DEFAULTS, **{k: str(v) for k, v in self.hyperparameters.items()}}

    def options(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "threads": self.threads,
            "share_encoders": True,
            "cosine_loss_weight": self.cosine_loss_weight,
            "align_unseen_tokens": self.align_unseen_tokens,
            "early_stopping_metric": "knn_accuracy",
            "early_stopping_reference": "best",
            "k": self.k,
            "in_batch_temperature": self.in_batch_temperature,
        }


Progress = Callable[[dict[str, Any]], None]


@dataclass
class Encoded:
    """Labelled data as token rows, with label ids (-1: out of scope)."""

    rows: list[list[int]]
    labels: np.ndarray
    names: list[str]

    @classmethod
    def of(cls, data: Labelled, tokenizer: TextTokenizer, names: list[str]) -> Encoded:
        index = {name: i for i, name in enumerate(names)}
        ids = np.array([-1 if y == data.oos_label else index.get(y, -2) for y in data.labels], dtype=np.int64)
        return cls(tokenizer.encode(data.texts), ids, names)


def epoch_pairs(data: Encoded, rate: int, rng: random.Random) -> tuple[list[int], list[int], list[float]]:
    """One epoch's (in0 row, in1 row, label): each in-scope item with one same-label item (1) and `rate` items of
    other labels (0); each out-of-scope item with `rate` in-scope items (0)."""
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(data.labels.tolist()):
        if y >= 0:
            by_label.setdefault(y, []).append(i)
    in_scope = [i for i, y in enumerate(data.labels.tolist()) if y >= 0]
    a: list[int] = []
    b: list[int] = []
    y_out: list[float] = []
    for i, y in enumerate(data.labels.tolist()):
        if y >= 0:
            same = by_label[y]
            if len(same) > 1:
                j = same[rng.randrange(len(same) - 1)]
                j = same[-1] if j == i else j
                a.append(i)
                b.append(j)
                y_out.append(1.0)
        for _ in range(rate):
            j = in_scope[rng.randrange(len(in_scope))]
            while data.labels[j] == y:
                j = in_scope[rng.randrange(len(in_scope))]
            a.append(i)
            b.append(j)
            y_out.append(0.0)
    return a, b, y_out


@torch.no_grad()
def embed_rows(model: Object2Vec, rows: list[list[int]], batch: int = 1024) -> np.ndarray:
    """Unit-length enc0 embeddings, in order."""
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = np.empty((len(rows), model.hp.enc_dim), dtype=np.float32)
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        out[idx] = F.normalize(model.enc0(pad([rows[i] for i in idx])), dim=-1).numpy()
    return out


def knn_votes(train_vecs: np.ndarray, train: Encoded, vecs: np.ndarray, held: Encoded, k: int) -> Votes:
    """The classify route's vote for each held-out item over the in-scope train items (gold None: out of scope)."""
    keep = train.labels >= 0
    labels, support = knn(train_vecs[keep], train.labels[keep], vecs, k)
    gold = [None if y < 0 else int(y) for y in held.labels.tolist()]
    return Votes(np.array(labels, dtype=object), np.asarray(support, dtype=np.float64), np.array(gold, dtype=object))


def score_votes(votes: Votes) -> dict[str, float | None]:
    """In-scope kNN accuracy; with out-of-scope items, the calibrated min_score (`o2v index calibrate`'s rule) and
    the out-of-scope recall and precision at it."""
    has_oos = any(t is None for t in votes.truth.tolist())
    min_score = fit(votes, per_label=False)[0] if has_oos else NO_THRESHOLD
    scores = intent_scores(votes, min_score)
    out: dict[str, float | None] = {"knn_accuracy": round(scores["in_scope_acc"], 4)}
    if has_oos:
        out.update(
            min_score=round(min_score, 4),
            accuracy_at_min_score=round(scores["in_scope_acc_at_min"], 4),
            oos_recall=round(scores["oos_recall"], 4),
            oos_precision=round(scores["oos_precision"], 4),
        )
    return out


def evaluate_model(model: Object2Vec, train: Encoded, held: Encoded, k: int) -> dict[str, float | None]:
    vecs = embed_rows(model, train.rows + held.rows)
    return score_votes(knn_votes(vecs[: len(train.rows)], train, vecs[len(train.rows) :], held, k))


@dataclass
class AdaptResult:
    model: Object2Vec
    hp: Hyperparameters
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: int | None
    parent_eval: dict[str, float | None]
    evaluation: dict[str, float | None]
    seconds: float
    aligned_tokens: int = 0


class LabelTask:
    """Labelled utterances: pairs drawn by `epoch_pairs`, held-out kNN accuracy watched."""

    metric = "knn_accuracy"

    def __init__(self, train: Labelled, held: Labelled, tokenizer: TextTokenizer, k: int) -> None:
        check_labelled(train, min_per_label=1)
        names = sorted({y for y in train.labels if y != train.oos_label})
        self.train, self.held = Encoded.of(train, tokenizer, names), Encoded.of(held, tokenizer, names)
        self.rows, self.k = self.train.rows, k
        self.groups = self.train.labels

    def pairs(self, rate: int, rng: random.Random) -> tuple[list[int], list[int], list[float]]:
        return epoch_pairs(self.train, rate, rng)

    def evaluate(self, model: Object2Vec) -> dict[str, float | None]:
        return evaluate_model(model, self.train, self.held, self.k)


class PairTask:
    """Object2Vec's own pair data as text, `(text0, text1, label)` with labels in [0, 1] (1: related): the given
    pairs each epoch plus `negative_sampling_rate` random in1 texts (label 0) per positive, as SageMaker samples;
    the held-out pairs' Spearman between cosine and label is watched."""

    metric = "spearman_cosine"

    def __init__(self, train: PairList, held: PairList, tokenizer: TextTokenizer) -> None:
        texts = sorted({t for a, b, _ in train + held for t in (a, b)})
        index = {t: i for i, t in enumerate(texts)}
        self.rows = tokenizer.encode(texts)
        self.train = [(index[a], index[b], float(y)) for a, b, y in train]
        self.held = [(index[a], index[b], float(y)) for a, b, y in held]
        self.groups = np.arange(len(texts))

    def pairs(self, rate: int, rng: random.Random) -> tuple[list[int], list[int], list[float]]:
        a, b, y = (list(x) for x in zip(*self.train, strict=True))
        for i, _, label in self.train:
            if label >= 0.5:
                for _ in range(rate):
                    a.append(i)
                    b.append(self.train[rng.randrange(len(self.train))][1])
                    y.append(0.0)
        return a, b, y

    def evaluate(self, model: Object2Vec) -> dict[str, float | None]:
        from scipy.stats import spearmanr  # late: a labelled job never needs scipy.stats (about 0.8 s to import)

        vecs = embed_rows(model, self.rows)
        cos = [float(vecs[i] @ vecs[j]) for i, j, _ in self.held]
        rho = spearmanr(cos, [y for _, _, y in self.held]).statistic if len(self.held) > 2 else float("nan")
        return {"spearman_cosine": round(float(rho), 4)}


PairList = list[tuple[str, str, float]]
Task = LabelTask | PairTask


def in_batch_loss(a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax over in-batch negatives: each positive pair's in0 against every in1 of the batch's positive pairs,
    the other pairs' in1 being its negatives (those of its own group, i.e. label, are left out), cosine over
    `temperature`. Object2Vec's negative sampling with the batch as the sample."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    same = groups[:, None] == groups[None, :]
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(a)))


def fine_tune(parent: ModelDir, task_of: Any, cfg: AdaptConfig, progress: Progress | None = None) -> AdaptResult:
    """Train from `parent` on the task `task_of(tokenizer)` builds, stop early and keep the best epoch by the
    task's held-out metric (epoch 0: the parent).

    `progress(row)` sees each epoch's row (epoch, losses, validation metrics); raising Cancelled from it stops.
    """
    started = time.time()
    torch.set_num_threads(max(1, cfg.threads))
    rng = seed_everything(cfg.seed)
    hp = _parent_hp(parent.hp, cfg.sagemaker())
    start = recover(parent)
    model = Object2Vec(hp, share_encoders=True)
    model.load_state_dict(start.state_dict())
    start_table = start.enc0.embedding.weight.detach().clone()
    task: Task = task_of(parent.tokenizer())
    parent_eval = task.evaluate(model)
    history: list[dict[str, Any]] = []
    if progress:
        progress({"epoch": 0, "validation": parent_eval, "seconds": round(time.time() - started, 1)})
    optimizers = _optimizers(model, hp)
    stopper = EarlyStopping(hp.early_stopping_patience, hp.early_stopping_tolerance, "best")
    best_state, best_epoch, stopped = copy.deepcopy(model.state_dict()), 0, None
    best_value = float(parent_eval[task.metric] or 0.0)
    for epoch in range(1, hp.epochs + 1):
        model.train()
        a, b, y = task.pairs(hp.negative_sampling_rate, rng)
        order = list(range(len(y)))
        rng.shuffle(order)
        running = 0.0
        for s in range(0, len(order), hp.mini_batch_size):
            idx = order[s : s + hp.mini_batch_size]
            x0 = pad([task.rows[a[i]] for i in idx])
            x1 = pad([task.rows[b[i]] for i in idx])
            target = torch.tensor([y[i] for i in idx], dtype=torch.float32)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            out, ea, eb = model(x0, x1)
            loss = pair_loss(model, out, ea, eb, target, cfg.cosine_loss_weight)
            if cfg.in_batch_temperature > 0:
                pos = target >= 0.5
                if int(pos.sum()) > 1:
                    groups = torch.as_tensor(task.groups[[a[i] for i in idx]])[pos]
                    loss = loss + in_batch_loss(ea[pos], eb[pos], groups, cfg.in_batch_temperature)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}: loss became {float(loss)}; lower learning_rate")
            loss.backward()
            for opt in optimizers:
                opt.step()
            running += float(loss.detach()) * len(idx)
        metrics = task.evaluate(model)
        row = {
            "epoch": epoch,
            "train_loss": round(running / max(len(order), 1), 6),
            "pairs": len(order),
            "validation": metrics,
            "seconds": round(time.time() - started, 1),
        }
        history.append(row)
        if progress:
            progress(row)
        value = float(metrics[task.metric] or 0.0)
        if value > best_value:
            best_value, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
        if stopper.step(-value):
            stopped = epoch
            break
    model.load_state_dict(best_state)
    aligned = 0
    if cfg.align_unseen_tokens and best_epoch:
        seen = torch.zeros(start_table.shape[0], dtype=torch.bool)
        seen[torch.tensor([t for row in task.rows for t in row], dtype=torch.long)] = True
        aligned = align_unseen_tokens(model.enc0.embedding, start_table, seen)
    evaluation = task.evaluate(model)
    elapsed = round(time.time() - started, 1)
    return AdaptResult(model.eval(), hp, history, best_epoch, stopped, parent_eval, evaluation, elapsed, aligned)


# --- export ----------------------------------------------------------------------------------------------------


def export_adapted(
    result: AdaptResult,
    parent: ModelDir,
    out: Path,
    name: str,
    lineage: dict[str, Any],
    rotation_rows: list[list[int]],
    evaluation: dict[str, Any],
    card_extra: dict[str, Any] | None = None,
    documents: dict[str, str] | None = None,
) -> Path:
    """Write the model directory into a temporary sibling of `out`, then rename it into place: a kill leaves a
    `.partial-*` folder (which the registry ignores and removes), never a half-written model under `name`.
    `card_extra` adds card entries (the tuning trials); `documents` are text files to ship with it (report.html)."""
    out = Path(out)
    tmp = out.parent / f".partial-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        dtype = str(parent.card.get("encoder", {}).get("embedding_dtype", "float32"))
        export_encoder(result.model.enc0, tmp / "encoder.onnx", dtype)
        export_scorer(result.model, tmp / "scorer.onnx")
        for file in ("tokenizer.json", "vocab.json"):
            shutil.copyfile(parent.path / file, tmp / file)
        hp = result.hp
        (tmp / "hyperparameters.json").write_text(json.dumps(hp.to_sagemaker(), indent=1))
        card: dict[str, Any] = {
            "name": name,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "framework": "object2vec-service adaptation (PyTorch fine-tune, ONNX inference)",
            "encoder": {
                **{k: v for k, v in parent.card.get("encoder", {}).items() if k != "rotation"},
                "embedding_dtype": dtype,
            },
            "scorer": {"output_layer": hp.output_layer, "comparator_list": hp.comparator_list},
            "hyperparameters": hp.to_sagemaker(),
            "lineage": lineage,
            "training": {
                "epochs_run": len(result.history),
                "best_epoch": result.best_epoch,
                "stopped_early": result.stopped_early,
                "train_seconds": result.seconds,
                "aligned_unseen_tokens": result.aligned_tokens,
                "history": result.history,
            },
            "evaluation": evaluation,
            **(card_extra or {}),
        }
        for file_name, text in (documents or {}).items():
            (tmp / file_name).write_text(text, encoding="utf-8")
        card["files"] = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.suffix in (".onnx", ".json")}
        card["encoder"]["rotation"] = None
        (tmp / "model_card.json").write_text(json.dumps(card, indent=1))
        rotate_model_dir(tmp, rotation_rows, f"{len(rotation_rows)} training utterances")
        if out.exists():
            raise FileExistsError(f"{out} exists")
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def lineage_of(parent: ModelDir, data: Labelled, held: Labelled, cfg: AdaptConfig, source: str) -> dict[str, Any]:
    """What the card records of where a model came from: the parent (name and files' hashes), the data's hash and
    size, the held-out split, the SageMaker hyperparameters given and the local options."""
    return {
        "parent": parent.name,
        "parent_files": parent.card.get("files", {}),
        "data": {
            "source": source,
            "sha256": data.sha256(),
            "items": len(data),
            "labels": len({y for y in data.labels if y != data.oos_label}),
            "oos_label": data.oos_label,
        },
        "held_out": {"sha256": held.sha256(), "items": len(held)},
        "hyperparameters_given": {k: str(v) for k, v in cfg.hyperparameters.items()},
        "local_options": cfg.options(),
    }
