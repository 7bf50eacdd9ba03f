"""Backups of a collection: its items in the embedded engine's SQLite store format, plus a manifest (config, model
fingerprint, count); restored into either engine. The store holds every item, vector and setting; the FAISS index is
derived and rebuilt on the first open after a restore, so it is not copied.

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
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from service.durable import fsync_path
from service.index.base import CollectionRegistry, Item
from service.index.engines.faiss.collection import DB_FILE
from service.index.engines.faiss.registry import FaissCollections
from service.index.engines.faiss.store import Store
from service.index.errors import Conflict, InvalidRequest, NotFound
from service.index.names import check_name, collection_dir

MANIFEST = "backup.json"
FORMAT = 1
RESTORE_BATCH = 1_000


def backup(collections: CollectionRegistry, name: str, target: Path) -> dict[str, Any]:
    """Copy collection `name` into the empty or new folder `target`; the manifest written last marks it complete."""
    collections.get(name)  # NotFound before any file is made
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise Conflict(f"{target} is not empty; back up into a new folder", "dir")
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"{DB_FILE}.partial"
    if isinstance(collections, FaissCollections):
        engine = "faiss"
        source = sqlite3.connect(collection_dir(collections.data_dir, name) / DB_FILE, timeout=60.0)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)  # pages=-1: one step, one consistent moment
        finally:
            copy.close()
            source.close()
    else:
        engine = "milvus"
        _milvus_copy(collections, name, partial)
    copy = sqlite3.connect(partial)
    try:
        meta = {key: json.loads(value) for key, value in copy.execute("SELECT key, value FROM meta")}
        count = int(copy.execute("SELECT count(*) FROM items").fetchone()[0])
        seq = copy.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    finally:
        copy.close()
    fsync_path(partial)
    os.replace(partial, target / DB_FILE)
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


def _milvus_copy(collections: CollectionRegistry, name: str, path: Path) -> None:
    """A Milvus collection's items, settings and fingerprint as an embedded-engine store at `path`, in write order."""
    from service.index.engines.milvus.engine import MilvusCollection, MilvusCollections
    from service.index.engines.milvus.expressions import GIVEN

    assert isinstance(collections, MilvusCollections)
    collection = collections.get(name)
    assert isinstance(collection, MilvusCollection)
    rows: list[dict[str, Any]] = []
    with collections.writing(name, exclusive=True), collections.errors(name):
        target = collection._items()
        if target is not None:
            fields = ["id", "text", "metadata", "tags", "seq", "vector"]
            for page in collection.pages(target, fields):
                rows += page
        model, attributes = collection._catalog_model(), collection._extras().get("attributes")
    rows.sort(key=lambda r: (r["seq"], r["id"]))
    store = Store(path)
    try:
        with store.transaction():
            store.set_meta("index", collection.config.public())
            if collection.dim is not None:
                store.set_meta("dim", collection.dim)
            if model is not None:
                store.set_meta("model", model)
            if attributes:
                store.set_meta("attributes", attributes)
            items = [Item(r["id"], r["text"], r["metadata"], GIVEN in r["tags"]) for r in rows]
            store.upsert(items, np.asarray([r["vector"] for r in rows], np.float32).reshape(len(rows), -1))
    finally:
        store.close()


def _milvus_restore(collections: CollectionRegistry, path: Path, name: str, manifest: dict[str, Any]) -> None:
    """Create collection `name` on Milvus from a backup's store: its settings, then the items in row order, written
    with the backup's model fingerprint (adopted by the first write, as when they were first written)."""
    config = dict(manifest.get("config") or {})
    index = config.pop("index", None)
    collection, _ = collections.create(name, index, config)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.execute("BEGIN")  # one consistent view
        meta = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}
        cursor = db.execute("SELECT id, text, metadata, vector, given FROM items ORDER BY row")
        while batch := cursor.fetchmany(RESTORE_BATCH):
            items = [Item(i, t, json.loads(m), bool(g)) for i, t, m, _, g in batch]
            vectors = np.frombuffer(b"".join(v for _, _, _, v, _ in batch), np.float32).reshape(len(batch), -1)
            collection.upsert(items, vectors, meta.get("model"))
    finally:
        db.close()
    if meta.get("attributes"):
        collection.set_attributes(meta["attributes"])


def restore(collections: CollectionRegistry, source: Path, name: str | None = None) -> dict[str, Any]:
    """Make a new collection (the backup's name, or `name`) from the backup in `source`, on either engine; never
    overwrites one."""
    source = Path(source)
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise NotFound(f"{source} holds no complete backup ({MANIFEST} unreadable: {exc})", "dir") from exc
    if manifest.get("format") != FORMAT or not (source / DB_FILE).is_file():
        raise InvalidRequest(f"{source} is not a backup this version can restore", "dir")
    name = check_name(name or manifest["collection"])
    if name in collections.names():
        raise Conflict(f"collection {name!r} exists; restore under another name or drop it first", "name")
    check = sqlite3.connect(f"file:{source / DB_FILE}?mode=ro", uri=True)
    try:
        ok = check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        check.close()
    if not ok:
        raise InvalidRequest(f"{source / DB_FILE} fails SQLite's integrity check", "dir")
    if not isinstance(collections, FaissCollections):
        _milvus_restore(collections, source / DB_FILE, name, manifest)
        return {**manifest, "collection": name, "count": collections.get(name).info()["count"]}
    registry = collections
    folder = collection_dir(registry.data_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{DB_FILE}.partial"
    shutil.copyfile(source / DB_FILE, partial)
    fsync_path(partial)
    os.replace(partial, folder / DB_FILE)  # the collection exists from this rename on, complete
    return {**manifest, "collection": name, "count": registry.get(name).info()["count"]}
