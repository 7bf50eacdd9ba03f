"""A team's labelled utterances for adaptation: checks, a content hash and a stratified held-out split (no torch).

The API checks a request with these before it queues a job, so bad data is a 422 naming the labels and their counts,
never a job that fails minutes later.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class LabelError(ValueError):
    """Data that cannot train: the message names the labels and their counts (the API answers 422)."""

    def __init__(self, message: str, field: str = "label_key") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Labelled:
    """Utterances with one label each; `oos_label` marks the out-of-scope items (never a class of their own)."""

    texts: list[str]
    labels: list[str]
    oos_label: str | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> Counter[str]:
        return Counter(self.labels)

    def in_scope(self) -> list[int]:
        return [i for i, y in enumerate(self.labels) if y != self.oos_label]

    def subset(self, rows: Sequence[int]) -> Labelled:
        return Labelled([self.texts[i] for i in rows], [self.labels[i] for i in rows], self.oos_label)

    def sha256(self) -> str:
        """The data's identity for the model card's lineage: the (text, label) pairs in order."""
        blob = json.dumps([self.texts, self.labels, self.oos_label], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _named(counts: Counter[str] | dict[str, int], limit: int = 20) -> str:
    items = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))
    text = ", ".join(f"{label!r}: {n}" for label, n in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_labelled(data: Labelled, min_per_label: int = 2, max_labels: int = 10_000) -> None:
    """Refuse data that cannot train a classifier: fewer than 2 in-scope labels, or a label with fewer than
    `min_per_label` items (one for training, one held out)."""
    counts = Counter(data.labels[i] for i in data.in_scope())
    if len(counts) < 2:
        raise LabelError(f"adaptation needs at least 2 labels with items; found {len(counts)} ({_named(counts)})")
    if len(counts) > max_labels:
        raise LabelError(f"at most {max_labels} labels; found {len(counts)}")
    few = {label: n for label, n in counts.items() if n < min_per_label}
    if few:
        raise LabelError(
            f"every label needs at least {min_per_label} items (one to train on, one held out); "
            f"{len(few)} labels have fewer: {_named(few)}"
        )


def stratified_split(data: Labelled, fraction: float, seed: int) -> tuple[Labelled, Labelled]:
    """(train, held out): about `fraction` of each label held out, at least one item, never a label's last item.
    Out-of-scope items are split alike. Seeded, so a given seed holds out the same items."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(data.labels):
        by_label.setdefault(label, []).append(i)
    train: list[int] = []
    held: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        n = len(rows)
        k = min(max(1, round(n * fraction)), n - 1) if n >= 2 else 0
        held += rows[:k]
        train += rows[k:]
    return data.subset(sorted(train)), data.subset(sorted(held))


def labelled_items(collection: Any, label_key: str, oos_label: str | None, limit: int) -> Labelled:
    """Every item's text and label of a collection (service.index VectorCollection); items without `label_key`
    (or with a label that is not a text or a number) are a LabelError naming how many and which."""
    texts: list[str] = []
    labels: list[str] = []
    missing: list[str] = []
    after = None
    while True:
        page = collection.scroll(after, 1000, {})
        for item in page:
            value = (item.metadata or {}).get(label_key)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                missing.append(item.id)
                continue
            texts.append(item.text)
            labels.append(str(value))
        if len(page) < 1000:
            break
        after = page[-1].id
        if len(texts) > limit:
            raise LabelError(f"the collection has more than {limit} items (O2V_ADAPT_MAX_ITEMS)", "collection")
    if missing:
        shown = ", ".join(repr(i) for i in missing[:10])
        raise LabelError(
            f"{len(missing)} of {len(missing) + len(texts)} items have no {label_key!r} label (a text or number): "
            f"{shown}{' ...' if len(missing) > 10 else ''}"
        )
    return Labelled(texts, labels, oos_label)


def pair_rows(pairs: Sequence[tuple[str, str, float]]) -> Labelled:
    """Object2Vec pairs as Labelled rows ("text0 TAB text1 TAB label", the label rounded to a class), so they are
    checked, split by label and hashed like utterances; `rows_pairs` reads them back."""
    return Labelled([f"{a}\t{b}\t{y!r}" for a, b, y in pairs], [str(round(y)) for _, _, y in pairs])


def rows_pairs(data: Labelled) -> list[tuple[str, str, float]]:
    out = []
    for row in data.texts:
        a, b, y = row.rsplit("\t", 2)
        out.append((a, b, float(y)))
    return out
