"""Object2Vec JSON Lines channels (`{"label", "in0", "in1"}`): reading, checking, batching and CSV conversion."""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from service.text import TextTokenizer


class DataError(ValueError):
    """A malformed record; the message names the file and the 1-based line number."""


@dataclass
class PairData:
    """One channel in memory: token id lists for each side and a label per pair."""

    in0: list[list[int]]
    in1: list[list[int]]
    labels: list[float]

    def __len__(self) -> int:
        return len(self.labels)


def _ids(value: object, key: str, where: str, vocab_size: int, max_len: int) -> list[int]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: '{key}' must be a non-empty list of token ids")
    for token in value:
        if isinstance(token, bool) or not isinstance(token, int):
            raise DataError(f"{where}: '{key}' holds {token!r}, not an integer token id")
        if not 0 <= token < vocab_size:
            raise DataError(f"{where}: '{key}' token id {token} is outside [0, {vocab_size - 1}] (vocab_size)")
    return value[:max_len]


def read_jsonl(
    path: str | Path,
    vocab_size: tuple[int, int],
    max_seq_len: tuple[int, int],
    num_classes: int | None,
) -> PairData:
    """Read a channel file. num_classes=None means regression (any finite label); otherwise labels are 0..n-1."""
    path = Path(path)
    data = PairData([], [], [])
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object with 'label', 'in0' and 'in1'")
            missing = [k for k in ("label", "in0", "in1") if k not in record]
            if missing:
                raise DataError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
            label = record["label"]
            if isinstance(label, bool) or not isinstance(label, int | float) or not math.isfinite(label):
                raise DataError(f"{where}: 'label' must be a finite number, got {label!r}")
            if num_classes is not None and (label != int(label) or not 0 <= label < num_classes):
                raise DataError(f"{where}: 'label' {label!r} is not a class id in [0, {num_classes - 1}]")
            data.in0.append(_ids(record["in0"], "in0", where, vocab_size[0], max_seq_len[0]))
            data.in1.append(_ids(record["in1"], "in1", where, vocab_size[1], max_seq_len[1]))
            data.labels.append(float(label))
    if not data.labels:
        raise DataError(f"{path}: no records")
    return data


def pad(rows: list[list[int]]) -> torch.Tensor:
    return torch.from_numpy(TextTokenizer.pad(rows))


def with_negatives(data: PairData, rate: int, rng: random.Random) -> PairData:
    """SageMaker's negative sampling: each positive pair gets `rate` negatives (label 0) with a random in1."""
    if rate <= 0:
        return data
    out = PairData(list(data.in0), list(data.in1), list(data.labels))
    n = len(data)
    for i in range(n):
        if data.labels[i] != 1:
            continue
        for _ in range(rate):
            j = rng.randrange(n)
            if j == i:
                j = (j + 1) % n
            out.in0.append(data.in0[i])
            out.in1.append(data.in1[j])
            out.labels.append(0.0)
    return out


def batches(
    data: PairData, size: int, rng: random.Random | None, bucket_width: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Mini-batches of padded (in0, in1, label); shuffled when rng is given.

    With SageMaker's `bucket_width` > 0, pairs whose longer side falls in the same length bucket are batched
    together, so short sentences are not padded to the longest one in the channel (the batches are shuffled).
    """
    order = list(range(len(data)))
    if rng is not None:
        rng.shuffle(order)
    if bucket_width > 0:
        order.sort(key=lambda i: max(len(data.in0[i]), len(data.in1[i])) // bucket_width)
    starts = list(range(0, len(order), size))
    if rng is not None and bucket_width > 0:
        rng.shuffle(starts)
    for start in starts:
        idx = order[start : start + size]
        yield (
            pad([data.in0[i] for i in idx]),
            pad([data.in1[i] for i in idx]),
            torch.tensor([data.labels[i] for i in idx], dtype=torch.float32),
        )


def convert_pairs(
    src: str | Path,
    dst: str | Path,
    tokenizer: TextTokenizer,
    columns: tuple[int, int, int] = (0, 1, 2),
    delimiter: str | None = None,
    label_scale: float = 1.0,
    skip_header: bool = False,
) -> int:
    """Turn a sentence-pair CSV/TSV (text0, text1, label columns, 0-based) into Object2Vec JSON Lines."""
    src = Path(src)
    if delimiter is None:
        delimiter = "\t" if src.suffix.lower() in (".tsv", ".txt") else ","
    quoting: Literal[0, 3] = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    rows: list[tuple[str, str, float]] = []
    with open(src, encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter=delimiter, quoting=quoting), 1):
            if skip_header and lineno == 1:
                continue
            if len(row) <= max(columns):
                raise DataError(f"{src}:{lineno}: expected at least {max(columns) + 1} columns, found {len(row)}")
            try:
                label = float(row[columns[2]]) * label_scale
            except ValueError:
                raise DataError(f"{src}:{lineno}: label {row[columns[2]]!r} is not a number") from None
            rows.append((row[columns[0]], row[columns[1]], label))
    ids0 = tokenizer.encode([r[0] for r in rows])
    ids1 = tokenizer.encode([r[1] for r in rows])
    with open(dst, "w", encoding="utf-8") as out:
        for a, b, r in zip(ids0, ids1, rows, strict=True):
            label = int(r[2]) if r[2].is_integer() and label_scale == 1.0 else r[2]
            out.write(json.dumps({"label": label, "in0": a, "in1": b}) + "\n")
    return len(rows)
