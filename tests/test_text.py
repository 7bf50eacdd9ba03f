"""The WordPiece tokenizer wrapper: truncation, padding, vocab.json in Object2Vec's format."""

from __future__ import annotations

import json
from pathlib import Path

from service.settings import DEFAULT_MODEL_DIR
from service.text import TextTokenizer

TOKENIZER = DEFAULT_MODEL_DIR / "tokenizer.json"


def test_truncates_to_max_seq_len() -> None:
    tok = TextTokenizer.from_file(TOKENIZER, 5)
    ids = tok.encode(["one two three four five six seven eight", "short"])
    assert [len(r) for r in ids] == [5, 1]
    assert tok.count_tokens(["a b c d e f g"]) == [5]


def test_wordpiece_without_special_tokens() -> None:
    tok = TextTokenizer.from_file(TOKENIZER, 32)
    vocab = tok.vocab()
    assert tok.encode(["The dog"])[0] == [vocab["the"], vocab["dog"]]
    assert len(tok.encode(["unbelievability"])[0]) > 1  # split into word pieces
    assert tok.encode(["   "]) == [[vocab["[UNK]"]]]


def test_pad_gives_int64_matrix_with_zero_padding() -> None:
    padded = TextTokenizer.pad([[5, 6, 7], [8]])
    assert padded.dtype.name == "int64" and padded.tolist() == [[5, 6, 7], [8, 0, 0]]


def test_save_writes_object2vec_vocab(tmp_path: Path) -> None:
    tok = TextTokenizer.from_file(TOKENIZER, 16)
    tok.save(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert len(vocab) == tok.vocab_size == 30522 and vocab["[PAD]"] == 0
    again = TextTokenizer.from_file(tmp_path / "tokenizer.json", 16)
    assert again.encode(["hello there world"]) == tok.encode(["hello there world"])
