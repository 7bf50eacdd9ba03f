"""Model quality on public data: STS-B test Spearman and CLINC150 kNN intent accuracy (`o2v eval`), relatedness on
data unlike the training data, a word-order contrast set, typo'd input, and how much of the vocabulary training
reached.

`embed` is any function texts → L2-normalised float32 rows, so the bundled model and a peer are scored alike.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.datasets import file_sha256, read_clinc, read_reviews, read_sts, source_files
from service.drift.tokens import TRAINED_FILE, load_trained
from service.index.calibrate import NO_THRESHOLD, Votes, fit, measure
from service.index.classify import vote
from service.model.model_dir import ModelDir
from service.text import TextTokenizer
from service.vectors import cosine_matrix, pair_cosines

Embed = Callable[[Sequence[str]], np.ndarray]
OOS = "oos"
"""CLINC150's out-of-scope label."""


def sts_spearman(embed: Embed) -> float:
    """Spearman of the cosine of each STS-B test pair with its human score."""
    return pair_spearman(embed, [(p.a, p.b, p.score) for p in read_sts("test")])


def knn(
    train_vecs: np.ndarray, train_labels: np.ndarray, queries: np.ndarray, k: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """The classify route's vote (service.index.classify.vote) over the k nearest train rows by exact cosine, with no
    threshold: (voted label, support) per query, as a flat collection of the train rows would answer."""
    sims = cosine_matrix(queries, train_vecs)
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    labels, support = [], []
    for row, idx in enumerate(top):
        nearest = idx[np.argsort(-sims[row, idx], kind="stable")]
        label, confidence = vote(train_labels[nearest].tolist(), sims[row, nearest].tolist(), NO_THRESHOLD)
        labels.append(label)
        support.append(confidence)
    return np.array(labels), np.array(support)


def intent_votes(labels: Sequence | np.ndarray, support: np.ndarray, truth: Sequence) -> Votes:
    """Votes as calibration reads them: the true label None for out of scope (CLINC150's `oos`)."""
    gold = np.array([None if y == OOS else y for y in truth], dtype=object)
    return Votes(np.array(labels, dtype=object), np.asarray(support, dtype=np.float64), gold)


def choose_min_score(val: Votes) -> float:
    """min_score from validation votes as `o2v index calibrate` chooses it: the single threshold that maximises the
    mean of in-scope accuracy and out-of-scope recall."""
    return fit(val, per_label=False)[0]


def intent_scores(test: Votes, min_score: float) -> dict[str, float]:
    """In-scope accuracy of the plain vote and with min_score applied (a rejected in-scope query counts wrong),
    out-of-scope recall and precision at min_score."""
    plain, at = measure(test, NO_THRESHOLD, {}), measure(test, min_score, {})
    return {
        "in_scope_acc": plain["accuracy"],
        "in_scope_acc_at_min": at["accuracy"],
        "oos_recall": at["recall"],
        "oos_precision": at["precision"],
    }


def clinc(embed: Embed, k: int = 10) -> dict[str, float]:
    """k-nearest vote over CLINC150 in-scope train; min_score chosen on val, reported on test (bench.intent's rule,
    through a real collection there, gives the same numbers)."""
    train = [(t, y) for t, y in read_clinc("train") if y != OOS]
    vecs = embed([t for t, _ in train])
    labels = np.array([y for _, y in train])

    def votes(split: str) -> Votes:
        rows = read_clinc(split)
        return intent_votes(*knn(vecs, labels, embed([t for t, _ in rows]), k), [y for _, y in rows])

    min_score = choose_min_score(votes("val"))
    scores = intent_scores(votes("test"), min_score)
    return {
        "clinc_acc": round(scores["in_scope_acc"], 4),
        "clinc_acc_at_threshold": round(scores["in_scope_acc_at_min"], 4),
        "oos_recall": round(scores["oos_recall"], 4),
        "oos_precision": round(scores["oos_precision"], 4),
        "oos_threshold": round(min_score, 4),
    }


# --- relatedness on public data unlike the training data --------------------------------------------------------


def gensim_test_data(name: str) -> Path | None:
    """A file of gensim's bundled test data (PyPI `gensim`, LGPL-2.1, the `teacher` extra), found without importing
    gensim; None when gensim is not installed. It ships human relatedness sets no bundled model trains on."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data" / name
    return path if path.is_file() else None


def read_word_pairs(path: Path) -> list[tuple[str, str, float]]:
    """WordSim353 / SimLex-999 as gensim ships them: `word1<TAB>word2<TAB>human mean`, '#' comment lines."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            a, b, score = line.split("\t")[:3]
            rows.append((a, b, float(score)))
    return rows


def read_lee(folder: Path) -> tuple[list[str], np.ndarray]:
    """The Lee et al. (2005) corpus: 50 Australian news documents (latin-1) and the 50 × 50 mean human similarity."""
    docs = [line.strip() for line in (folder / "lee.cor").read_text(encoding="latin-1").split("\n") if line.strip()]
    return docs, np.loadtxt(folder / "similarities0-1.txt")


def pair_spearman(embed: Embed, pairs: Sequence[tuple[str, str, float]]) -> float:
    """Spearman of the cosine of each (a, b) with its human score."""
    from scipy.stats import spearmanr  # late: scipy.stats costs each start about 0.8 s (an adaptation job's too)

    cosines = pair_cosines(embed([p[0] for p in pairs]), embed([p[1] for p in pairs]))
    return float(spearmanr(cosines, [p[2] for p in pairs]).statistic)


def lee_spearman(embed: Embed, docs: Sequence[str], human: np.ndarray) -> float:
    """Spearman of document-pair cosines with the human ratings over the 1,225 distinct pairs (upper triangle)."""
    from scipy.stats import spearmanr  # late: see pair_spearman

    vecs = embed(docs)
    upper = np.triu_indices(len(docs), 1)
    return float(spearmanr(cosine_matrix(vecs)[upper], human[upper]).statistic)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half (Mann-Whitney U / n_pos n_neg)."""
    from scipy.stats import rankdata  # late: see pair_spearman

    ranks = rankdata(np.concatenate([positive, negative]))
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def same_label_auc(embed: Embed, texts: Sequence[str], labels: Sequence, groups: Sequence) -> float:
    """AUC of cosine for 'same label' over every pair of texts within a group.

    Pairs never cross groups (review source: phones, restaurants, films) so that topic, which any encoder sees,
    cannot stand in for the label (sentiment), which is what this asks about.
    """
    vecs, labels_arr, groups_arr = embed(texts), np.asarray(labels), np.asarray(groups)
    pos, neg = [], []
    for group in np.unique(groups_arr):
        idx = np.flatnonzero(groups_arr == group)
        upper = np.triu_indices(len(idx), 1)
        sims = cosine_matrix(vecs[idx])[upper]
        same = (labels_arr[idx][:, None] == labels_arr[idx][None, :])[upper]
        pos.append(sims[same])
        neg.append(sims[~same])
    return roc_auc(np.concatenate(pos), np.concatenate(neg))


def relatedness(embed: Embed) -> dict[str, float]:
    """Lee news-document Spearman, WordSim353 and SimLex-999 Spearman (gensim's copies; absent without gensim) and
    review same-sentiment AUC (the review *sentences* are in the bundled model's distillation pool, the sentiment
    labels never are)."""
    out: dict[str, float] = {}
    lee = gensim_test_data("lee.cor")
    if lee is not None:
        out["lee_spearman"] = round(lee_spearman(embed, *read_lee(lee.parent)), 4)
    for key, name in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        path = gensim_test_data(name)
        if path is not None:
            out[f"{key}_spearman"] = round(pair_spearman(embed, read_word_pairs(path)), 4)
    reviews = read_reviews()
    out["sentiment_auc"] = round(same_label_auc(embed, *zip(*reviews, strict=True)), 4)
    return out


# --- word order --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContrastPair:
    kind: str
    a: str
    b: str


def read_contrast_pairs(path: Path) -> list[ContrastPair]:
    """`kind<TAB>a<TAB>b` lines ('#' comments): pairs a bag of words cannot tell apart, meanings that differ."""
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    return [ContrastPair(*r) for r in rows if r[0] and not r[0].startswith("#")]


def contrast_cosines(embed: Embed, pairs: Sequence[ContrastPair]) -> dict[str, float]:
    """Mean cosine of the contrast pairs, overall and per kind: lower means the encoder sees order and negation."""
    cos = pair_cosines(embed([p.a for p in pairs]), embed([p.b for p in pairs]))
    kinds = np.array([p.kind for p in pairs])
    out = {"all": round(float(cos.mean()), 4)}
    out.update({str(k): round(float(cos[kinds == k].mean()), 4) for k in sorted(set(kinds))})
    return out


# --- messy input -------------------------------------------------------------------------------------------------

_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEY_OFFSETS = (0.0, 0.25, 0.75)  # a QWERTY row's horizontal shift, in keys


def _keyboard_neighbours() -> dict[str, str]:
    """Keys that touch each letter on a QWERTY keyboard: same row ±1, the rows above and below within a key."""
    where = {c: (r, i + _KEY_OFFSETS[r]) for r, row in enumerate(_KEY_ROWS) for i, c in enumerate(row)}

    def touching(c: str) -> str:
        (r, x) = where[c]
        return "".join(d for d, (r2, x2) in where.items() if d != c and abs(r2 - r) <= 1 and abs(x2 - x) <= 1)

    return {c: touching(c) for c in where}


KEYBOARD_NEIGHBOURS = _keyboard_neighbours()
TYPO_KINDS = ("delete", "insert", "substitute", "transpose")
_TYPO_WORD = re.compile(r"[A-Za-z]{3,}")


def _near_key(char: str, rng: random.Random) -> str:
    key = rng.choice(KEYBOARD_NEIGHBOURS[char.lower()])
    return key.upper() if char.isupper() else key


def add_typos(text: str, rng: random.Random, max_edits: int = 2) -> str:
    """1 to `max_edits` typing slips, each in a different word of three letters or more: a dropped letter, a
    neighbouring key pressed too (inserted) or instead (substituted), or two adjacent letters swapped.

    One edit per word keeps each edit a real one (two could cancel out) and the words recognisable, as with real
    typing errors; text with no such word comes back unchanged."""
    words = [m.span() for m in _TYPO_WORD.finditer(text)]
    chosen = rng.sample(words, min(len(words), rng.randint(1, max_edits)))
    chars = list(text)
    for start, end in sorted(chosen, reverse=True):  # right to left: earlier spans stay valid
        kind = rng.choice(TYPO_KINDS)
        i = rng.randrange(start, end)
        if kind == "transpose":
            i = min(i, end - 2)
            if chars[i].lower() == chars[i + 1].lower():
                kind = "substitute"  # swapping equal letters would change nothing
        if kind == "delete":
            del chars[i]
        elif kind == "insert":
            chars.insert(i + rng.randint(0, 1), _near_key(chars[i], rng))
        elif kind == "substitute":
            chars[i] = _near_key(chars[i], rng)
        else:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def with_typos(texts: Sequence[str], seed: int = 0, max_edits: int = 2) -> list[str]:
    """A typo'd copy of `texts`, the same for the same seed (one generator, texts in order)."""
    rng = random.Random(seed)
    return [add_typos(t, rng, max_edits) for t in texts]


# --- vocabulary coverage -----------------------------------------------------------------------------------------

# training_data keys (teacher.build's sources.json) whose effect on the token set is known: crops and reordered
# copies only reuse a pool sentence's own words, pair counts and labels touch no new row
_RECIPE_KEYS = {"teacher", "labels", "files", "train_pairs", "validation_pairs", "sentences", "seed",
                "gold_repeats", "dev_train_pairs", "crops", "per_band"}  # fmt: skip


def _channel_token_ids(path: Path) -> set[int]:
    ids: set[int] = set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            ids.update(row["in0"])
            ids.update(row["in1"])
    return ids


def _distillation_pool(recipe: dict[str, Any]) -> list[str] | None:
    """The sentences `o2v distill-data` drew its pairs from, rebuilt from the model card's `training_data` (the same
    steps as service.object2vec.teacher.build, which needs torch); None when the recipe or the data differ."""
    if set(recipe) - _RECIPE_KEYS or "files" not in recipe:
        return None
    if any(f not in source_files() for f in recipe["files"]):  # data changed since: sha256 differs
        return None
    dev = read_sts("dev")
    random.Random(recipe.get("seed", 0)).shuffle(dev)
    sts_train = read_sts("train") + dev[: recipe.get("dev_train_pairs", 0)]
    pool = {p.a for p in sts_train} | {p.b for p in sts_train}
    pool |= {t for split in ("train", "val") for t, _ in read_clinc(split)}
    pool |= {s for s, _, _ in read_reviews()}
    sentences = sorted(s for s in pool if s.strip())
    if not recipe.get("crops") and len(sentences) != recipe.get("sentences"):
        return None
    return sentences


def trained_token_ids(model: ModelDir, train_channel: Path | None = None) -> tuple[set[int] | None, str]:
    """The token rows training touched (the tokens of any train pair), and how that was found out.

    The model card does not list them, so: the train channel itself when given and its sha256 is the card's; else
    the exact rows `o2v export` wrote from the train channel (the card's `drift_tokens`); else the distillation pool
    rebuilt from the card's recipe and the shared data; else unknown (None)."""
    card = model.card
    want = card.get("channels", {}).get("train", {}).get("sha256")
    if train_channel is not None and train_channel.is_file():
        if want and file_sha256(train_channel) != want:
            return None, f"unknown: {train_channel} is not the channel this model was trained on (sha256)"
        return _channel_token_ids(train_channel), f"train channel {train_channel}"
    exported = card.get("drift_tokens") or {}
    exact = str(exported.get("source", {}).get("from", "")).startswith("train channel")
    mask = load_trained(model.path, int(exported.get("vocab_size", 0))) if exact else None
    if mask is not None:
        return set(np.flatnonzero(mask).tolist()), f"{TRAINED_FILE}, written by o2v export from the train channel"
    pool = _distillation_pool(card.get("training_data") or {})
    if pool is None:
        return None, "unknown: no train channel, and the card's training_data cannot be rebuilt"
    ids = {t for row in model.tokenizer().encode(pool) for t in row}
    return ids, f"rebuilt from the card's training_data ({len(pool):,} pool sentences)"


def token_hit_rate(tokenizer: TextTokenizer, texts: Sequence[str], trained: set[int]) -> float:
    """Share of the token occurrences (as the encoder sees them, truncated) whose row was trained."""
    rows = tokenizer.encode(texts)
    total = sum(len(r) for r in rows)
    return sum(t in trained for r in rows for t in r) / total


def vocabulary_coverage(
    model: ModelDir, corpora: Mapping[str, Sequence[str]], train_channel: Path | None = None
) -> dict[str, Any]:
    """Share of the token table that training touched, and of each held-back corpus's tokens that hit such a row.

    A pooled encoder's untrained rows are only the teacher's token-alone vectors carried over by an affine map, so a
    sentence made of them gets the starting point, not the distilled model: this says how often that happens."""
    trained, source = trained_token_ids(model, train_channel)
    vocab = model.vocab_size("in0")
    out: dict[str, Any] = {"vocab_rows": vocab, "trained_rows_source": source}
    if trained is None:
        return {**out, "trained_rows": "unknown", "rows_trained_share": "unknown"}
    out.update({"trained_rows": len(trained), "rows_trained_share": round(len(trained) / vocab, 4)})
    tokenizer = model.tokenizer()
    out.update({f"hit_{name}": round(token_hit_rate(tokenizer, texts, trained), 4) for name, texts in corpora.items()})
    return out
