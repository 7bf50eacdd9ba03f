"""Backups of an embedded-engine collection: a copy of its SQLite store made with SQLite's online backup API, plus a
manifest (config, model fingerprint, count). The store holds every item, vector and setting; the FAISS index is
derived and rebuilt on the first open after a restore, so it is not copied.

The copy is taken in one backup step, which reads one consistent moment of the database (a read transaction in WAL
mode): writers go on meanwhile and the backup holds either all or none of each acknowledged write.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from service.durable import fsync_path
from service.index.base import CollectionRegistry
from service.index.engines.faiss.collection import DB_FILE
from service.index.engines.faiss.registry import FaissCollections
from service.index.errors import Conflict, InvalidRequest, NotFound
from service.index.names import check_name, collection_dir

MANIFEST = "backup.json"
FORMAT = 1


def _embedded(collections: CollectionRegistry) -> FaissCollections:
    if not isinstance(collections, FaissCollections):
        message = "backups copy the embedded engine's SQLite store; Milvus has its own backup tools"
        raise InvalidRequest(message, "store")
    return collections


def backup(collections: CollectionRegistry, name: str, target: Path) -> dict[str, Any]:
    """Copy collection `name` into the empty or new folder `target`; the manifest written last marks it complete."""
    registry = _embedded(collections)
    registry.get(name)  # NotFound before any file is made
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise Conflict(f"{target} is not empty; back up into a new folder", "dir")
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"{DB_FILE}.partial"
    source = sqlite3.connect(collection_dir(registry.data_dir, name) / DB_FILE, timeout=60.0)
    copy = sqlite3.connect(partial)
    try:
        source.backup(copy)  # pages=-1: one step, one consistent moment
        meta = {key: json.loads(value) for key, value in copy.execute("SELECT key, value FROM meta")}
        count = int(copy.execute("SELECT count(*) FROM items").fetchone()[0])
        seq = copy.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    finally:
        copy.close()
        source.close()
    fsync_path(partial)
    os.replace(partial, target / DB_FILE)
    manifest = {
        "format": FORMAT,
        "collection": name,
        "engine": "faiss",
        "config": meta.get("index"),
        "model": meta.get("model"),
        "dim": meta.get("dim"),
        "count": count,
        "seq": int(seq[0]) if seq else 0,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    fsync_path(target / MANIFEST)
    return manifest


def restore(collections: CollectionRegistry, source: Path, name: str | None = None) -> dict[str, Any]:
    """Make a new collection (the backup's name, or `name`) from the backup in `source`; never overwrites one."""
    registry = _embedded(collections)
    source = Path(source)
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise NotFound(f"{source} holds no complete backup ({MANIFEST} unreadable: {exc})", "dir") from exc
    if manifest.get("format") != FORMAT or not (source / DB_FILE).is_file():
        raise InvalidRequest(f"{source} is not a backup this version can restore", "dir")
    name = check_name(name or manifest["collection"])
    folder = collection_dir(registry.data_dir, name)
    if name in registry.names():
        raise Conflict(f"collection {name!r} exists; restore under another name or drop it first", "name")
    check = sqlite3.connect(f"file:{source / DB_FILE}?mode=ro", uri=True)
    try:
        ok = check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        check.close()
    if not ok:
        raise InvalidRequest(f"{source / DB_FILE} fails SQLite's integrity check", "dir")
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{DB_FILE}.partial"
    shutil.copyfile(source / DB_FILE, partial)
    fsync_path(partial)
    os.replace(partial, folder / DB_FILE)  # the collection exists from this rename on, complete
    return {**manifest, "collection": name, "count": registry.get(name).info()["count"]}
