"""service.evaluation: the kNN vote (the classify route's), typo'd copies, relatedness scores, the contrast set and
vocabulary coverage."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from bench.quality import CONTRAST_FILE
from service.datasets import file_sha256, read_clinc, read_reviews, read_sts, source_files
from service.evaluation import (
    KEYBOARD_NEIGHBOURS,
    TYPO_KINDS,
    add_typos,
    contrast_cosines,
    knn,
    lee_spearman,
    read_contrast_pairs,
    read_lee,
    read_word_pairs,
    roc_auc,
    same_label_auc,
    trained_token_ids,
    vocabulary_coverage,
    with_typos,
)
from service.index.base import Item
from service.index.calibrate import NO_THRESHOLD
from service.index.classify import classify, vote
from service.model.model_dir import ModelDir
from service.settings import DEFAULT_MODEL_DIR
from tests.index_fixtures import DIM, registry, unit_vectors


def test_knn_votes_by_summed_cosine() -> None:
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], dtype=np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    labels = np.array(["a", "a", "b"])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    pred, support = knn(train, labels, queries, k=2)
    assert pred.tolist() == ["a", "b"]
    # the route's support: the winner's summed cosine over the k voters (b's second neighbour votes a)
    np.testing.assert_allclose(support, [(1.0 + train[1, 0]) / 2, 0.5], atol=1e-6)


def test_vote_is_the_routes_rule() -> None:
    """Support = Σ max(cosine, 0) / voters; ties go to the nearer neighbour's label; below its threshold → None."""
    assert vote(["a", "b", "b", "a"], [0.9, 0.8, 0.5, 0.4], 0.0) == ("a", pytest.approx(1.3 / 4))
    assert vote(["b", "a", "a", "b"], [0.9, 0.8, 0.5, 0.4], 0.0)[0] == "b"  # 1.3 each: b has the nearest voter
    assert vote(["a", "b"], [0.5, -0.9], 0.0) == ("a", 0.25)  # a negative cosine adds nothing, still counts as a voter
    assert vote(["a", "b"], [0.5, 0.1], 0.3) == (None, 0.25)
    assert vote(["a", "b"], [0.5, 0.1], 0.3, {"a": 0.2}) == ("a", 0.25)
    assert vote([], [], 0.0) == (None, 0.0)


def test_knn_and_the_classify_route_vote_identically(tmp_path: Path) -> None:
    """`o2v eval`'s exact kNN and a flat collection's classify (the route, bench.intent) give the same label and
    support for every query: in scope, between labels, far away, and with negative cosines among the neighbours."""
    rng = np.random.default_rng(4)
    centres = unit_vectors(4, seed=8)
    train = centres[np.arange(80) % 4] + 0.35 * rng.standard_normal((80, DIM)).astype(np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    labels = np.array(["greet", "bye", "help", "refund"])[np.arange(80) % 4]
    queries = np.concatenate([centres, (centres[:3] + centres[1:]) / 2, unit_vectors(20, seed=9)])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    collection, _ = registry(tmp_path).create("intents", "flat")
    collection.upsert([Item(f"t{i}", "", {"label": str(y)}) for i, y in enumerate(labels)], train)
    for k in (1, 5, 10, 80):
        voted, support = knn(train, labels, queries, k)
        routed = [classify(collection, q, "label", k, NO_THRESHOLD) for q in queries]
        assert voted.tolist() == [r.label for r in routed]
        np.testing.assert_allclose(support, [r.confidence for r in routed], atol=1e-6)


# --- typo'd input ------------------------------------------------------------------------------------------------


def osa_distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions counting one (optimal string alignment)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


UTTERANCES = [
    "how do i set an alarm for six",
    "what is my credit score",
    "transfer money from savings to checking",
    "book a table at the italian place tonight",
    "Tell me a joke",
    "is it going to rain in seattle tomorrow",
] * 30


def test_typos_are_one_or_two_real_edits_and_deterministic() -> None:
    noisy = with_typos(UTTERANCES, seed=3)
    assert noisy == with_typos(UTTERANCES, seed=3)
    assert noisy != with_typos(UTTERANCES, seed=4)
    distances = [osa_distance(a, b) for a, b in zip(UTTERANCES, noisy, strict=True)]
    assert set(distances) == {1, 2}  # every text changed, never by more than two slips


def test_typos_use_every_kind_and_neighbouring_keys_only() -> None:
    rng = random.Random(0)
    kinds = set()
    for _ in range(400):
        out = add_typos("keyboard", rng, max_edits=1)
        if len(out) == 7:
            kinds.add("delete")
        elif len(out) == 9:
            kinds.add("insert")  # a key next to the letter before or after it was pressed too
            spots = [j for j in range(9) if out[:j] + out[j + 1 :] == "keyboard"]
            assert any(out[j] in KEYBOARD_NEIGHBOURS[out[i]] for j in spots for i in (j - 1, j + 1) if 0 <= i < 9)
        elif sorted(out) == sorted("keyboard"):
            kinds.add("transpose")
        else:
            kinds.add("substitute")
            (i,) = [i for i in range(8) if out[i] != "keyboard"[i]]
            assert out[i] in KEYBOARD_NEIGHBOURS["keyboard"[i]]
    assert kinds == set(TYPO_KINDS)


def test_typos_keep_case_and_leave_short_words_alone() -> None:
    rng = random.Random(1)
    assert add_typos("a to be", rng) == "a to be"  # no word of three letters or more
    assert all(add_typos("HELLO", rng).isupper() for _ in range(50))


def test_keyboard_neighbours_are_symmetric_qwerty_keys() -> None:
    assert set(KEYBOARD_NEIGHBOURS["s"]) == set("weadzx")
    assert set(KEYBOARD_NEIGHBOURS["p"]) == set("ol")
    assert all(c in KEYBOARD_NEIGHBOURS[d] for c, near in KEYBOARD_NEIGHBOURS.items() for d in near)


# --- relatedness -------------------------------------------------------------------------------------------------


def test_roc_auc_matches_pairwise_count_with_ties_half() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 30).astype(float)
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(pos, neg) == pytest.approx(brute)
    assert roc_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


def one_hot_embed(table: dict[str, list[float]]):
    def embed(texts):
        rows = np.array([table[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    return embed


def test_same_label_auc_never_pairs_across_groups() -> None:
    # topic on axes 0 and 2, sentiment on axis 1: within a group the label separates perfectly, across groups
    # same-label pairs are far apart (other topic), which pooled pairs would count against the encoder
    table = {"a1": [1, 0.3, 0], "a2": [1, 0.31, 0], "a3": [1, -0.3, 0], "b1": [0, 0.3, 1], "b2": [0, -0.3, 1]}
    texts = list(table)
    labels = [1, 1, 0, 1, 0]
    groups = ["a", "a", "a", "b", "b"]
    assert same_label_auc(one_hot_embed(table), texts, labels, groups) == 1.0
    assert same_label_auc(one_hot_embed(table), texts, labels, ["x"] * 5) < 0.8  # one group: crossing pairs hurt


def test_word_pairs_and_lee_readers(tmp_path: Path) -> None:
    (tmp_path / "ws.tsv").write_text("# header\n# Word 1\tWord 2\tHuman (mean)\ntiger\tcat\t7.35\nbook\tpaper\t7.46\n")
    assert read_word_pairs(tmp_path / "ws.tsv") == [("tiger", "cat", 7.35), ("book", "paper", 7.46)]
    (tmp_path / "lee.cor").write_bytes("caf\xe9 news one\nsecond story\nthird".encode("latin-1"))
    (tmp_path / "similarities0-1.txt").write_text("1\t0.5\t0.2\n0.5\t1\t0.3\n0.2\t0.3\t1\n")
    docs, human = read_lee(tmp_path)
    assert docs == ["café news one", "second story", "third"]
    table = {docs[0]: [1, 0], docs[1]: [1, 0.5], docs[2]: [0, 1]}  # pair cosines 0.89, 0, 0.45: human's order
    assert lee_spearman(one_hot_embed(table), docs, human) == pytest.approx(1.0)
    assert lee_spearman(one_hot_embed(table), docs, human.T[::-1, ::-1]) < 1.0  # another pairing of the scores


# --- word-order contrast set -------------------------------------------------------------------------------------

NEGATIONS = {"not", "no", "never"}


def test_contrast_pairs_fool_a_bag_of_words() -> None:
    pairs = read_contrast_pairs(CONTRAST_FILE)
    assert len(pairs) >= 40
    assert {p.kind for p in pairs} == {"swap", "but_not", "from_to", "negation"}
    for p in pairs:
        a, b = Counter(p.a.split()), Counter(p.b.split())
        if p.kind == "negation":
            assert NEGATIONS & (a.keys() ^ b.keys()), p  # one side negates
            bow = sum(a[w] * b[w] for w in a) / np.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))
            assert bow > 0.85, p
        else:
            assert a == b and p.a != p.b, p  # same words, other order


def test_contrast_cosines_of_an_order_blind_encoder() -> None:
    pairs = read_contrast_pairs(CONTRAST_FILE)
    vocab = sorted({w for p in pairs for w in (p.a + " " + p.b).split()})

    def bag(texts):
        rows = np.array([[t.split().count(w) for w in vocab] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    cos = contrast_cosines(bag, pairs)
    assert cos["swap"] == cos["but_not"] == cos["from_to"] == 1.0
    assert 0.8 < cos["negation"] < 1.0
    n_neg = sum(p.kind == "negation" for p in pairs)
    assert cos["all"] == pytest.approx((len(pairs) - n_neg + n_neg * cos["negation"]) / len(pairs), abs=1e-4)


# --- vocabulary coverage -----------------------------------------------------------------------------------------


def tiny_model_dir(tmp_path: Path, card: dict) -> ModelDir:
    words = ["[PAD]", "[UNK]", "the", "dog", "bit", "man", "cat", "sat"]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    hp = {"enc0_max_seq_len": "4", "enc0_vocab_size": str(len(words)), "enc0_network": "pooled_embedding"}
    (tmp_path / "hyperparameters.json").write_text(json.dumps(hp))
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    return ModelDir.load(tmp_path)


def test_coverage_from_the_train_channel(tmp_path: Path) -> None:
    channel = tmp_path / "train.jsonl"
    channel.write_text('{"label": 1, "in0": [2, 3], "in1": [2, 4]}\n{"label": 0, "in0": [5], "in1": [3]}\n')
    model = tiny_model_dir(tmp_path, {"channels": {"train": {"file": "train.jsonl", "sha256": file_sha256(channel)}}})
    # the encoder sees 4 tokens at most: "the dog bit the" (4 of 4 trained), "cat sat the dog" (2 of 4)
    cov = vocabulary_coverage(model, {"held": ["the cat sat", "the dog bit the man", "cat sat the dog bit"]}, channel)
    assert cov["trained_rows"] == 4 and cov["rows_trained_share"] == 0.5
    assert cov["hit_held"] == round((1 + 4 + 2) / (3 + 4 + 4), 4)
    assert cov["trained_rows_source"].startswith("train channel")


def test_coverage_is_unknown_when_it_cannot_be_known(tmp_path: Path) -> None:
    channel = tmp_path / "train.jsonl"
    channel.write_text('{"label": 1, "in0": [2], "in1": [3]}\n')
    model = tiny_model_dir(tmp_path, {"channels": {"train": {"sha256": "0" * 64}}, "training_data": {"odd": 1}})
    assert trained_token_ids(model, channel)[0] is None  # a channel the model was not trained on
    cov = vocabulary_coverage(model, {"held": ["the dog"]})
    assert cov["trained_rows"] == cov["rows_trained_share"] == "unknown"
    assert "hit_held" not in cov


def test_trained_rows_rebuilt_from_the_cards_recipe_and_the_public_data(tmp_path: Path, public_data: Path) -> None:
    """A card whose training_data lists the public files it was distilled from, as the bundled model's does (here
    the stand-in datasets; the bundled model on the real ones: bench.quality's vocabulary coverage)."""
    pool = {t for p in read_sts("train") for t in (p.a, p.b)} | {t for t, _ in read_clinc("train") + read_clinc("val")}
    sentences = sorted(pool | {s for s, _, _ in read_reviews()})
    for name in ("tokenizer.json", "hyperparameters.json"):
        shutil.copy(DEFAULT_MODEL_DIR / name, tmp_path / name)

    def card(**recipe: object) -> ModelDir:
        training = {"files": source_files(), "sentences": len(sentences), "seed": 0, "dev_train_pairs": 0, **recipe}
        (tmp_path / "model_card.json").write_text(json.dumps({"training_data": training}))
        return ModelDir.load(tmp_path)

    ids, source = trained_token_ids(card())
    assert ids == {t for row in card().tokenizer().encode(sentences) for t in row}
    assert source == f"rebuilt from the card's training_data ({len(sentences):,} pool sentences)"
    assert trained_token_ids(card(sentences=len(sentences) + 1))[0] is None  # another pool than the card's
    changed = source_files()
    changed[0] = {**changed[0], "sha256": "0" * 64}
    assert trained_token_ids(card(files=changed))[0] is None  # the data changed since the model was trained
