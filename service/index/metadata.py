"""Item metadata: validation, and the canonical form of scalar values that filters and label votes compare."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.index.errors import InvalidRequest
from service.settings import Settings
from service.strings import unencodable_at

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Metadata integers are signed 64-bit: what SQLite, Milvus' JSON and orjson (the answers) all hold. Larger ones
would be stored and then fail every answer that includes them; JSON-safe 2^53 would refuse real 64-bit ids."""
DEFAULTS = Settings.flat_defaults()
MAX_FILTER_KEYS = 32
"""Keys in one search filter: each is a SQLite term (at most 500 in one statement) and a clause of Milvus'
expression; 32 exact-match keys is past any real filter on item metadata, and past it the request is a 422."""
MAX_METADATA_DEPTH = 16
"""Nesting of an item's metadata (objects and lists): checked before recursing deeper, so a value nested thousands
deep is a 422, not a RecursionError; 16 holds any document-like record, and filters only match top-level keys."""

ANY = None
"""A condition value meaning "the key is present with a scalar value" (classify's label key)."""

Conditions = dict[str, str | None]
"""key → canonical scalar value the item must have, or ANY."""


def canonical(value: Any) -> str | None:
    """One string per JSON scalar so that 1, 1.0 and "1" compare as JSON does (1 == 1.0 != "1"); None if not scalar."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return None


@dataclass(frozen=True)
class Limits:
    """What a caller may store or ask, the same on every engine (MAX_METADATA_DEPTH, O2V_MAX_METADATA_BYTES,
    MAX_FILTER_KEYS)."""

    metadata_max_depth: int = MAX_METADATA_DEPTH
    metadata_max_bytes: int = DEFAULTS["metadata_max_bytes"]
    max_filter_keys: int = MAX_FILTER_KEYS

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(MAX_METADATA_DEPTH, s.limits.max_metadata_bytes, MAX_FILTER_KEYS)


DEFAULT_LIMITS = Limits()


def check_string(value: Any, field: str, what: str = "value") -> str:
    """A str that UTF-8 can encode (no lone surrogate): the one rule for every string that is stored or queried."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string", field)
    at = unencodable_at(value)
    if at is not None:
        raise InvalidRequest(f"{what} has a lone surrogate at character {at}; strings must be valid UTF-8", field)
    return value


def check_metadata(metadata: Any, field: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A JSON object that every engine can store and every answer can carry back: string keys, valid UTF-8, finite
    numbers, signed 64-bit integers, nesting and size within `limits`. Returned unchanged; errors name `field` and
    say where inside it the fault is."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidRequest("metadata must be a JSON object", field)
    try:
        _check_json(metadata, "metadata", 1, limits.metadata_max_depth)
    except ValueError as exc:
        raise InvalidRequest(str(exc), field) from exc
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    if size > limits.metadata_max_bytes:
        message = f"metadata is {size} bytes of JSON; at most {limits.metadata_max_bytes} (O2V_MAX_METADATA_BYTES)"
        raise InvalidRequest(message, field)
    return dict(metadata)


def _check_json(value: Any, where: str, depth: int, max_depth: int) -> None:
    """Walk a metadata value, raising ValueError at the first fault (and before recursing past `max_depth`)."""
    if isinstance(value, (Mapping, list)):
        if depth > max_depth:
            raise ValueError(f"{where}: nested more than {max_depth} deep")
        if isinstance(value, list):
            for i, element in enumerate(value):
                _check_json(element, f"{where}[{i}]", depth + 1, max_depth)
            return
        for key, element in value.items():
            if not isinstance(key, str) or unencodable_at(key) is not None:
                raise ValueError(f"{where}: keys must be strings of valid UTF-8 (no lone surrogates)")
            _check_json(element, f"{where}.{key}", depth + 1, max_depth)
    elif isinstance(value, str):
        if unencodable_at(value) is not None:
            raise ValueError(f"{where}: has a lone surrogate; strings must be valid UTF-8")
    elif isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"{where}: integers must be from {INT_MIN} to {INT_MAX} (signed 64-bit)")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: numbers must be finite (no NaN or Infinity)")
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise ValueError(f"{where}: a {type(value).__name__} is not JSON")


def check_filter(flt: Mapping[str, Any] | None, limits: Limits = DEFAULT_LIMITS) -> Conditions:
    """Exact-match filter {key: scalar} → conditions; lists and objects cannot be matched exactly here. The number of
    keys is capped: each is a term of one SQL statement (SQLite takes 500) or of one Milvus expression."""
    flt = flt or {}
    if not isinstance(flt, Mapping):
        raise InvalidRequest("filter must be a JSON object", "filter")
    if len(flt) > limits.max_filter_keys:
        message = f"a filter has at most {limits.max_filter_keys} keys, got {len(flt)}"
        raise InvalidRequest(message, "filter")
    conditions: Conditions = {}
    for key, value in flt.items():
        field = f"filter.{check_string(key, 'filter', 'a filter key')}"
        canon = canonical(check_string(value, field) if isinstance(value, str) else value)
        if canon is None:
            raise InvalidRequest("filter values must be strings, numbers, booleans or null", field)
        conditions[key] = canon
    return conditions


def tags(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (key, canonical value) pairs of an item's scalar metadata, which the store indexes for filters."""
    out = []
    for key, value in metadata.items():
        canon = canonical(value)
        if canon is not None:
            out.append((key, canon))
    return out


def matches(metadata: Mapping[str, Any], conditions: Conditions) -> bool:
    for key, want in conditions.items():
        have = canonical(metadata[key]) if key in metadata else None
        if have is None or (want is not ANY and have != want):
            return False
    return True
