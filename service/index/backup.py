"""Backups of a collection: a folder holding its items in the embedded engine's SQLite store format (`BACKUP_FILE`)
and a manifest (config, model fingerprint, count), written last; restored into either engine. Each engine writes
and reads the file (`CollectionRegistry.export`, `restore_from`), holding every item, vector and setting; the FAISS
index is derived and rebuilt on the first open after a restore, so it is not copied.

Embedded engine: the store is copied with SQLite's online backup API in one backup step, which reads one consistent
moment of the database (a read transaction in WAL mode): writers go on meanwhile and the backup holds either all or
none of each acknowledged write.

Milvus: the items are read page by page (query_iterator) and written into a new store in their write order. This
process' writes to the collection wait meanwhile, so on Milvus Lite (one process) the backup is one consistent
moment. On a cluster Milvus offers no snapshot across pages: writes through other replicas during the backup are in
it or not, item by item (each item whole: id, text, metadata, vector and vector source of one write).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from service.durable import fsync_path
from service.index.base import CollectionRegistry
from service.index.errors import Conflict, InvalidRequest, NotFound
from service.index.names import check_name

MANIFEST = "backup.json"
BACKUP_FILE = "items.sqlite"
FORMAT = 1


def backup(collections: CollectionRegistry, name: str, target: Path) -> dict[str, Any]:
    """Copy collection `name` into the empty or new folder `target`; the manifest written last marks it complete."""
    collections.get(name)  # NotFound before any file is made
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise Conflict(f"{target} is not empty; back up into a new folder", "dir")
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"{BACKUP_FILE}.partial"
    engine = collections.export(name, partial)
    copy = sqlite3.connect(partial)
    try:
        meta = {key: json.loads(value) for key, value in copy.execute("SELECT key, value FROM meta")}
        count = int(copy.execute("SELECT count(*) FROM items").fetchone()[0])
        seq = copy.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    finally:
        copy.close()
    fsync_path(partial)
    os.replace(partial, target / BACKUP_FILE)
    manifest = {
        "format": FORMAT,
        "collection": name,
        "engine": engine,
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
    """Make a new collection (the backup's name, or `name`) from the backup in `source`, on either engine; never
    overwrites one."""
    source = Path(source)
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise NotFound(f"{source} holds no complete backup ({MANIFEST} unreadable: {exc})", "dir") from exc
    if manifest.get("format") != FORMAT or not (source / BACKUP_FILE).is_file():
        raise InvalidRequest(f"{source} is not a backup this version can restore", "dir")
    name = check_name(name or manifest["collection"])
    if name in collections.names():
        raise Conflict(f"collection {name!r} exists; restore under another name or drop it first", "name")
    collections.restore_from(name, source / BACKUP_FILE)
    return {**manifest, "collection": name, "count": collections.get(name).info()["count"]}
