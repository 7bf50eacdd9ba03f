"""Collection names and where their files live: a name maps to exactly one folder inside the data directory."""

from __future__ import annotations

import re
from pathlib import Path

from service.index.errors import InvalidRequest

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_name(name: str) -> str:
    """Return the name if it is a valid collection name; the pattern has no dots or slashes, so no path tricks."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidRequest(f"collection name must match {NAME_RE.pattern}, got {name!r}", "name")
    return name


def collection_dir(data_dir: Path, name: str) -> Path:
    """The folder of collection `name`; checked to sit directly under `data_dir` even if the pattern changes."""
    root = Path(data_dir).resolve()
    path = (root / check_name(name)).resolve()
    if path.parent != root:
        raise InvalidRequest(f"collection name {name!r} escapes the data directory", "name")
    return path
