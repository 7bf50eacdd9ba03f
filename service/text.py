"""Text → token ids with HF `tokenizers` WordPiece, truncated to enc0_max_seq_len, padded with id 0."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

PAD_ID = 0


class TextTokenizer:
    """Wraps a `tokenizers.Tokenizer` (bert-base-uncased WordPiece) without special tokens.

    Object2Vec reads bare token ids, so [CLS]/[SEP] are not added; an input with no tokens at all becomes the
    unknown token, never an empty row.
    """

    def __init__(self, tokenizer: Tokenizer, max_seq_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_seq_len)
        self.unk_id = self.tokenizer.token_to_id("[UNK]") or 1

    @classmethod
    def from_file(cls, path: str | Path, max_seq_len: int) -> TextTokenizer:
        return cls(Tokenizer.from_file(str(path)), max_seq_len)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def vocab(self) -> dict[str, int]:
        """Object2Vec's vocab file format: one JSON object {token: id}."""
        return self.tokenizer.get_vocab(with_added_tokens=True)

    def save(self, model_dir: str | Path) -> None:
        """Write tokenizer.json and vocab.json into a model directory."""
        model_dir = Path(model_dir)
        self.tokenizer.no_truncation()
        self.tokenizer.save(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_len)
        ordered = dict(sorted(self.vocab().items(), key=lambda kv: kv[1]))
        (model_dir / "vocab.json").write_text(json.dumps(ordered, ensure_ascii=False))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids for each text, at most max_seq_len each."""
        out = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids if e.ids else [self.unk_id] for e in out]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encode(texts)]

    @staticmethod
    def pad(rows: Sequence[Sequence[int]]) -> np.ndarray:
        """Pad to the longest row with PAD_ID; the result is the int64 matrix encoder.onnx takes."""
        width = max((len(r) for r in rows), default=1) or 1
        out = np.full((len(rows), width), PAD_ID, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out
