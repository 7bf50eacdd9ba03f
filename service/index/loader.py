"""Bulk load: rows of a CSV, TSV, JSON Lines or JSON file → items, embedded in batches and upserted; resumable.

Re-running a load skips every row whose id is already stored with the same text and metadata, so an interrupted
load picks up where it stopped and an unchanged file costs only lookups. Ids default to `<file stem>-<row number>`.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from service.index.base import Item, VectorCollection
from service.index.errors import InvalidRequest

Record = dict[str, Any] | list[Any]
Embed = Callable[[list[str]], np.ndarray]
FORMATS = ("csv", "tsv", "jsonl", "json")


def guess_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"txt": "tsv", "tab": "tsv", "ndjson": "jsonl"}.get(suffix, suffix if suffix in FORMATS else "csv")


def read_records(path: Path, fmt: str, header: bool = True, records_key: str | None = None) -> Iterator[Record]:
    """Rows as dicts (a header or JSON objects) or lists (no header, JSON arrays).

    TSV is read without quote handling (the review files have bare quotes); lines split only at \\n or \\r\\n,
    so characters such as U+0085 stay inside their text. JSON is a list of rows, or an object whose
    `records_key` holds one.
    """
    if fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        yield from data[records_key] if records_key else data
        return
    with open(path, encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            yield from (json.loads(line) for line in fh if line.strip())
            return
        rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else csv.reader(fh)
        names = next(rows, None) if header else None
        for row in rows:
            if row:
                yield dict(zip(names, row, strict=False)) if names else row


def count_records(path: Path, fmt: str, header: bool, records_key: str | None) -> int | None:
    """Rows for the progress bar (lines for line formats; a quoted newline makes it an estimate)."""
    if fmt == "json":
        return None
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip()) - (1 if header and fmt in ("csv", "tsv") else 0)


@dataclass(frozen=True)
class Columns:
    """Which column holds what: names for dict rows, 0-based numbers for list rows."""

    text: str
    id: str | None = None
    label: str | None = None
    label_key: str = "label"
    metadata: dict[str, str] = field(default_factory=dict)
    """metadata key → column"""
    constants: dict[str, Any] = field(default_factory=dict)
    """metadata every item gets (e.g. source=yelp)"""
    typed: bool = False
    """read metadata cells that look like JSON scalars as such ("1" → 1): CSV and TSV cells are all strings"""

    def item(self, record: Record, number: int, default_prefix: str) -> Item:
        text = _cell(record, self.text, number)
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest(f"row {number}: column {self.text!r} holds no text", "text")
        item_id = str(_cell(record, self.id, number)) if self.id is not None else f"{default_prefix}-{number}"
        columns = {**self.metadata, **({self.label_key: self.label} if self.label is not None else {})}
        metadata = dict(self.constants)
        for key, column in columns.items():
            value = _cell(record, column, number)
            metadata[key] = scalar_or_text(value) if self.typed and isinstance(value, str) else value
        return Item(item_id, text.strip(), metadata)


def scalar_or_text(raw: str) -> Any:
    """ "1" → 1, "true" → True, "null" → None; anything else (including JSON lists and objects) stays text."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return raw if isinstance(value, (list, dict)) else value


def _cell(record: Record, column: str, number: int) -> Any:
    try:
        return record[int(column)] if isinstance(record, list) else record[column]
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidRequest(f"row {number} has no column {column!r}", "columns") from exc


@dataclass
class LoadReport:
    read: int = 0
    skipped: int = 0
    upserted: int = 0
    seconds: float = 0.0


def load(
    collection: VectorCollection,
    records: Iterable[Record],
    columns: Columns,
    embed: Embed,
    id_prefix: str,
    batch_size: int = 256,
    total: int | None = None,
    progress: bool = True,
    model: str | None = None,
) -> LoadReport:
    """Embed and upsert rows batch by batch; each batch is durable before the next is read. `model` is the
    fingerprint of the model behind `embed` (service/index/fingerprint.py), which the collection is pinned to."""
    report = LoadReport()
    started = time.perf_counter()
    with tqdm(total=total, unit="row", disable=not progress, desc=collection.name) as bar:
        for batch in _batches(records, batch_size):
            items = [columns.item(record, report.read + i, id_prefix) for i, record in enumerate(batch)]
            report.read += len(items)
            fresh = _changed(collection, items)
            if fresh:
                report.upserted += collection.upsert(fresh, embed([item.text for item in fresh]), model)
            report.skipped += len(items) - len(fresh)
            bar.update(len(items))
            bar.set_postfix(upserted=report.upserted, skipped=report.skipped)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _changed(collection: VectorCollection, items: Sequence[Item]) -> list[Item]:
    """Items not stored yet, or stored with another text or metadata (the last of a repeated id wins)."""
    latest = {item.id: item for item in items}
    stored = dict(zip(latest, collection.items(list(latest)), strict=True))
    return [item for item in latest.values() if stored[item.id] != item]


def _batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
