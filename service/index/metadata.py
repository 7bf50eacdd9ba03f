"""Item metadata: validation, and the canonical form of scalar values that filters and label votes compare."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from service.index.errors import InvalidRequest

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


def check_metadata(metadata: Any, field: str) -> dict[str, Any]:
    """A JSON object with string keys and no NaN/Infinity; returned unchanged."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise InvalidRequest("metadata must be a JSON object with string keys", field)
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"metadata is not valid JSON: {exc}", field) from exc
    return dict(metadata)


def check_filter(flt: Mapping[str, Any] | None) -> Conditions:
    """Exact-match filter {key: scalar} → conditions; lists and objects cannot be matched exactly here."""
    conditions: Conditions = {}
    for key, value in (flt or {}).items():
        canon = canonical(value)
        if not isinstance(key, str) or canon is None:
            raise InvalidRequest("filter values must be strings, numbers, booleans or null", f"filter.{key}")
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
