"""Text → token ids with HF `tokenizers` WordPiece, truncated to enc0_max_seq_len, padded with id 0."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Tokenizer

from service.errors import InvalidRequest

PAD_ID = 0
Direction = Literal["right", "left"]


@dataclass(frozen=True)
class Encoded:
    """Rows cut to max_seq_len, and each text's token count before the cut (so callers can see what was dropped)."""

    rows: list[list[int]]
    lengths: list[int]
    max_seq_len: int

    @property
    def truncated(self) -> list[int]:
        """Indices of the texts that lost tokens."""
        return [i for i, n in enumerate(self.lengths) if n > self.max_seq_len]


class TooManyTokens(InvalidRequest):
    """A request's texts hold more tokens than one answer may list."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the inputs hold more than {limit} tokens in all (O2V_MAX_TOKENIZE_TOKENS): send fewer or shorter texts",
            "inputs",
        )


def _chunks(texts: Sequence[str], max_chars: int | None) -> Iterator[list[str]]:
    """Consecutive texts of at most `max_chars` characters together (a longer text alone); all at once for None."""
    if max_chars is None:
        yield list(texts)
        return
    chunk: list[str] = []
    chars = 0
    for text in texts:
        if chunk and chars + len(text) > max_chars:
            yield chunk
            chunk, chars = [], 0
        chunk.append(text)
        chars += len(text)
    if chunk:
        yield chunk


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    start: int
    stop: int
    special: bool


class TextTokenizer:
    """Wraps a `tokenizers.Tokenizer` (bert-base-uncased WordPiece) without special tokens.

    Object2Vec reads bare token ids, so [CLS]/[SEP] are not added; an input with no tokens at all becomes the
    unknown token, never an empty row.
    """

    def __init__(self, tokenizer: Tokenizer, max_seq_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()  # cut in `encode_counted`, from either side, after counting
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
        self.tokenizer.save(str(model_dir / "tokenizer.json"))
        ordered = dict(sorted(self.vocab().items(), key=lambda kv: kv[1]))
        (model_dir / "vocab.json").write_text(json.dumps(ordered, ensure_ascii=False))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids for each text, at most max_seq_len each (the first ones)."""
        return self.encode_counted(texts).rows

    def encode_counted(self, texts: Sequence[str], direction: Direction = "right") -> Encoded:
        """Token ids cut to max_seq_len, keeping the first tokens (`right`: the end is cut) or the last (`left`)."""
        out = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        full = [e.ids if e.ids else [self.unk_id] for e in out]
        keep = self.max_seq_len
        rows = [ids[:keep] if direction == "right" else ids[-keep:] for ids in full]
        return Encoded(rows, [len(ids) for ids in full], keep)

    def tokens(
        self, texts: Sequence[str], add_special_tokens: bool = False, max_tokens: int | None = None
    ) -> list[list[Token]]:
        """Every token of each text, uncut, with its character span in the text; [CLS]/[SEP] only on request
        (the model reads bare ids, so they are not what it embeds). More than `max_tokens` in all raises
        TooManyTokens: texts are tokenized a chunk of at most `max_tokens` characters (or one text) at a time, and
        the count checked after each, so about `max_tokens` tokens at most are ever held."""
        found: list[list[Token]] = []
        total = 0
        for chunk in _chunks(texts, max_tokens):
            out = self.tokenizer.encode_batch(chunk, add_special_tokens=add_special_tokens)
            total += sum(map(len, out))
            if max_tokens is not None and total > max_tokens:
                raise TooManyTokens(max_tokens)
            found += [
                [
                    Token(i, tok if special else text[a:b], a, b, bool(special))
                    for i, tok, (a, b), special in zip(e.ids, e.tokens, e.offsets, e.special_tokens_mask, strict=True)
                ]
                for text, e in zip(chunk, out, strict=True)
            ]
        return found

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model reads of each text (after the cut; `encode_counted(...).lengths` are before it)."""
        return [len(ids) for ids in self.encode(texts)]

    @staticmethod
    def pad(rows: Sequence[Sequence[int]]) -> np.ndarray:
        """Pad to the longest row with PAD_ID; the result is the int64 matrix encoder.onnx takes."""
        width = max((len(r) for r in rows), default=1) or 1
        out = np.full((len(rows), width), PAD_ID, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out
