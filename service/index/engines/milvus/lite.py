"""Milvus Lite: a local `.db` file that pymilvus serves from an in-process server, one per file, on first connect.

Every registry of one file in this process shares that server; it must stop when the last of them closes, which
closes (and fsyncs) its write-ahead log and lets another process open the file. pymilvus starts it through
`milvus_lite.server_manager_instance` and leaves it running until the process exits, so the users are counted here.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

_USERS: Counter[str] = Counter()
"""Open registries per Milvus Lite file in this process."""
_LOCK = threading.Lock()


def is_lite(uri: str) -> bool:
    """A local path (Milvus Lite) rather than an http(s):// server address."""
    return "://" not in uri


def _key(uri: str) -> str:
    return str(Path(uri).resolve())


def prepare(uri: str) -> None:
    """The file's folder, which Milvus Lite does not make."""
    Path(uri).parent.mkdir(parents=True, exist_ok=True)


def opened(uri: str) -> None:
    """A registry connected to the file."""
    with _LOCK:
        _USERS[_key(uri)] += 1


def closed(uri: str) -> None:
    """A registry closed its connection; the last one stops the file's server (`release_server`, public in
    milvus_lite's `__all__` for exactly this pymilvus integration)."""
    path = _key(uri)
    with _LOCK:
        _USERS[path] -= 1
        last = _USERS[path] <= 0
        if last:
            del _USERS[path]
    if last:
        from milvus_lite import server_manager_instance

        server_manager_instance.release_server(path)
