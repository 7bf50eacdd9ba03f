"""Plain-text tables for the tools' reports: one row a line, columns padded to their widest cell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Print `rows` under the titles of `columns` ((key, title) pairs); a missing key is an empty cell."""
    widths = [max(len(title), *(len(str(r.get(key, ""))) for r in rows)) for key, title in columns]
    print(" | ".join(t.ljust(w) for (_, t), w in zip(columns, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(r.get(k, "")).ljust(w) for (k, _), w in zip(columns, widths, strict=True)))
