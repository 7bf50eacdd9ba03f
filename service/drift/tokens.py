"""Vocabulary signals: per tokenized text, the share of its tokens whose embedding rows training never updated, the
share of [UNK], and whether it was cut at max_seq_len.

Why: an Object2Vec encoder can only place a text by tokens it learned. A token whose row training never touched
keeps its initial (or aligned) vector, so traffic full of such tokens — another language, new product names — is
where the model does not generalize, before any score looks odd. The model directory says which rows were trained
(`trained_tokens.npy`, a packed bit per vocabulary id) and what the validation texts' rates were
(`token_rates.json`), which are the baselines of the three streams; without the files the streams learn their
own baseline like `search_top1`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.drift.streams import TOKEN_STREAMS, TRUNCATED, UNK_RATE, UNSEEN_TOKEN_RATE

TRAINED_FILE = "trained_tokens.npy"
RATES_FILE = "token_rates.json"


@dataclass(frozen=True)
class TokenRates:
    """Turns token rows into the three per-text values; `trained` is a bool per vocabulary id."""

    trained: np.ndarray | None
    unk_id: int
    max_seq_len: int

    def rates(self, rows: Sequence[Sequence[int]], lengths: Sequence[int]) -> dict[str, list[float]]:
        """Per text, aligned with `rows`: unseen share (only with a trained mask), [UNK] share, truncated (0/1)."""
        out: dict[str, list[float]] = {name: [] for name in TOKEN_STREAMS}
        for row, length in zip(rows, lengths, strict=True):
            ids = np.asarray(row, dtype=np.int64)
            ids = ids[ids > 0]  # 0 is padding
            if ids.size == 0:  # never from the tokenizer (an empty text is one [UNK]); kept aligned all the same
                ids = np.array([self.unk_id])
            if self.trained is not None:
                known = ids < self.trained.size
                trained = known & self.trained[np.minimum(ids, self.trained.size - 1)]
                out[UNSEEN_TOKEN_RATE].append(float(1.0 - np.mean(trained)))
            out[UNK_RATE].append(float(np.mean(ids == self.unk_id)))
            out[TRUNCATED].append(float(length > self.max_seq_len))
        return out


def trained_mask(rows: Iterable[Sequence[int]], vocab_size: int) -> np.ndarray:
    """True for every id that occurs in `rows` (the train channel's in0/in1): the rows training updated."""
    mask = np.zeros(vocab_size, dtype=bool)
    for row in rows:
        ids = np.asarray(row, dtype=np.int64)
        mask[ids[(ids > 0) & (ids < vocab_size)]] = True
    return mask


def channel_token_rows(path: str | Path, limit: int | None = None) -> list[list[int]]:
    """Token ids of an Object2Vec channel's in0 and in1, record by record (`limit`: at most that many rows)."""
    rows: list[list[int]] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            record = json.loads(line)
            rows += [record[key] for key in ("in0", "in1") if isinstance(record.get(key), list) and record[key]]
            if limit is not None and len(rows) >= limit:
                break
    return rows[:limit]


def write_token_files(
    model_dir: str | Path,
    trained: np.ndarray,
    validation_rows: Sequence[Sequence[int]],
    validation_lengths: Sequence[int],
    unk_id: int,
    max_seq_len: int,
    source: dict[str, Any],
) -> dict[str, Any]:
    """Write `trained_tokens.npy` and `token_rates.json` (the validation texts' rates, the streams' baselines)."""
    folder = Path(model_dir)
    np.save(folder / TRAINED_FILE, np.packbits(trained))
    rates = TokenRates(trained, unk_id, max_seq_len).rates(validation_rows, validation_lengths)
    doc = {
        "vocab_size": int(trained.size),
        "trained_ids": int(trained.sum()),
        "source": source,
        "validation": {name: [round(v, 4) for v in values] for name, values in rates.items()},
    }
    (folder / RATES_FILE).write_text(json.dumps(doc, separators=(",", ":")))
    return {k: v for k, v in doc.items() if k != "validation"}


def load_trained(folder: Path, vocab_size: int) -> np.ndarray | None:
    """The trained mask write_token_files left in `folder` (a bool per vocabulary id), or None without one."""
    if not (folder / TRAINED_FILE).is_file():
        return None
    return np.unpackbits(np.load(folder / TRAINED_FILE, allow_pickle=False))[:vocab_size].astype(bool)


@dataclass(frozen=True)
class TokenModel:
    """What the model directory says: the trained mask and the validation rates (each may be missing)."""

    trained: np.ndarray | None
    validation: dict[str, list[float]]
    source: str

    @classmethod
    def load(cls, model_dir: str | Path | None, vocab_size: int) -> TokenModel:
        folder = Path(model_dir) if model_dir is not None else None
        trained = load_trained(folder, vocab_size) if folder is not None else None
        validation: dict[str, list[float]] = {}
        source = "none"
        if folder is not None and (folder / RATES_FILE).is_file():
            doc = json.loads((folder / RATES_FILE).read_text())
            validation = {
                k: [float(v) for v in vals if isinstance(v, int | float) and math.isfinite(v)]
                for k, vals in (doc.get("validation") or {}).items()
                if k in TOKEN_STREAMS
            }
            source = json.dumps(doc.get("source"), separators=(",", ":"))[:200]
        return cls(trained, validation, source)
