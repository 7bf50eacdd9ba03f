"""Milvus filter expressions and the item tags they match: built from hex digits and integers only.

No caller's text ever enters a Milvus expression. Ids are matched by their hex, and a filter {key: value} by
`tags`, 64-bit hashes of (key, canonical value) as metadata.py defines them (1 == 1.0 != "1", null matches null);
hits are then checked against the metadata itself, so even a hash collision cannot return a wrong item. An
expression holds only hex digits, integers and base-36 digits: injection is impossible by construction, and
metadata keys need no pattern. (pymilvus' `ids=` helpers quote string keys without escaping, and Milvus Lite 3.2
parses no `filter_params` templates, so neither is used.)

The same tags are also kept as text (`tags_text`, ",<base 36>,<base 36>,") on Milvus Lite, whose filter evaluator
runs `array_contains_all` row by row in Python but `LIKE` on a VARCHAR column as one vectorised Arrow kernel.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from service.index.metadata import ANY, Conditions, canonical
from service.index.names import check_name


def pk(item_id: str) -> str:
    return item_id.encode("utf-8").hex()


def tag(key: str, canon: str | None) -> int:
    """The signed 64-bit hash of (key, canonical value), or of (key,) alone for "has a scalar value" (ANY)."""
    raw = json.dumps([key] if canon is ANY else [key, canon], ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


GIVEN = int.from_bytes(hashlib.blake2b(b'["o2v", "vector", "given"]', digest_size=8).digest(), "big", signed=True)
"""The tag of an item whose vector the caller sent: three elements, so no metadata tag (one or two) can equal it."""


def item_tags(metadata: dict[str, Any]) -> list[int]:
    out = []
    for key, value in metadata.items():
        canon = canonical(value)
        if canon is not None:
            out += [tag(key, canon), tag(key, ANY)]
    return out


def name_filter(name: str) -> str:
    """The catalog row of a collection; a checked name holds no quote or backslash."""
    return f'name == "{check_name(name)}"'


def pk_filter(ids: Sequence[str]) -> str:
    """`pk in [...]` of hex strings: nothing in it can end a string literal."""
    return "pk in [" + ", ".join(f'"{pk(i)}"' for i in ids) + "]"


def pk_after(item_id: str) -> str:
    """Items whose id sorts after `item_id` (pk is the hex of the UTF-8 id, so pk order is id order)."""
    return f'pk > "{pk(item_id)}"'


def tags_filter(conditions: Conditions, as_text: bool = False) -> str:
    """Every condition as an integer the item's tags must contain; empty when there is none. `as_text`: as a
    `LIKE` on `tags_text` per condition instead (Milvus Lite evaluates that vectorised)."""
    if not conditions:
        return ""
    tags = [tag(k, v) for k, v in conditions.items()]
    if as_text:
        return " and ".join(f'tags_text like "%,{base36(t)},%"' for t in tags)
    return f"array_contains_all(tags, [{', '.join(str(t) for t in tags)}])"


DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(value: int) -> str:
    """A signed 64-bit tag as at most 13 base-36 digits of its unsigned form: 4,096 tags fit one VARCHAR."""
    value &= 2**64 - 1
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = DIGITS[digit] + out
        if not value:
            return out


def tags_text(tags: Sequence[int]) -> str:
    """The tags as `tags_text` holds them: each between commas, so `LIKE "%,<tag>,%"` matches whole tags only."""
    return "," + "".join(base36(t) + "," for t in tags)
