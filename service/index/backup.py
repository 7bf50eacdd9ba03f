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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from service.durable import fsync_path
from service.index.base import CollectionRegistry, Item
from service.index.engines.faiss.collection import DB_FILE
from service.index.engines.faiss.registry import FaissCollections
from service.index.engines.faiss.store import Store, damage
from service.index.errors import Conflict, InvalidRequest, NotFound
from service.index.names import check_name, collection_dir

MANIFEST = "backup.json"
FORMAT = 1
RESTORE_BATCH = 1_000
COLUMNS = "id, text, metadata, vector, given"


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
    """A Milvus collection's items, settings and fingerprint as an embedded-engine store at `path`, in write order.
    Pages are staged in a temporary table and written out sorted by write number, so memory holds one batch."""
    from service.index.engines.milvus.engine import MilvusCollection, MilvusCollections
    from service.index.engines.milvus.expressions import GIVEN

    assert isinstance(collections, MilvusCollections)
    collection = collections.get(name)
    assert isinstance(collection, MilvusCollection)
    store = Store(path)
    try:
        db = store.db
        db.execute("CREATE TEMP TABLE staged (seq INTEGER, id TEXT, text TEXT, metadata TEXT, vector BLOB, given INT)")
        with collections.writing(name, exclusive=True), collections.errors(name):
            target = collection._items()
            for page in collection.pages(target, ["id", "text", "metadata", "tags", "seq", "vector"]) if target else ():
                staged = [
                    (
                        r["seq"],
                        r["id"],
                        r["text"],
                        json.dumps(r["metadata"], ensure_ascii=False),
                        np.asarray(r["vector"], np.float32).tobytes(),
                        int(GIVEN in r["tags"]),
                    )
                    for r in page
                ]
                db.executemany("INSERT INTO staged VALUES (?, ?, ?, ?, ?, ?)", staged)
            model, attributes = collection._catalog_model(), collection._extras().get("attributes")
        with store.transaction():
            store.set_meta("index", collection.config.public())
            for key, value in (("dim", collection.dim), ("model", model), ("attributes", attributes)):
                if value:
                    store.set_meta(key, value)
            for items, vectors in _batches(db.execute(f"SELECT {COLUMNS} FROM staged ORDER BY seq, id")):
                store.upsert(items, vectors)
    finally:
        store.close()


def _batches(rows: sqlite3.Cursor) -> Iterator[tuple[list[Item], np.ndarray]]:
    """Rows of COLUMNS as items and their vectors, RESTORE_BATCH at a time."""
    while batch := rows.fetchmany(RESTORE_BATCH):
        items = [Item(i, t, json.loads(m), bool(g)) for i, t, m, _, g in batch]
        yield items, np.frombuffer(b"".join(row[3] for row in batch), np.float32).reshape(len(batch), -1)


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
        for items, vectors in _batches(db.execute(f"SELECT {COLUMNS} FROM items ORDER BY row")):
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
    _check_backup(source / DB_FILE)
    if not isinstance(collections, FaissCollections):
        _milvus_restore(collections, source / DB_FILE, name, manifest)
        return {**manifest, "collection": name, "count": collections.get(name).info()["count"]}
    registry = collections
    folder = collection_dir(registry.data_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{DB_FILE}.partial"
    try:
        shutil.copyfile(source / DB_FILE, partial)
        fsync_path(partial)
        _check_backup(partial)  # the copy is what goes into place: checked, not only its source
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    os.replace(partial, folder / DB_FILE)  # the collection exists from this rename on, complete
    return {**manifest, "collection": name, "count": registry.get(name).info()["count"]}


def _check_backup(path: Path) -> None:
    """InvalidRequest unless the file passes SQLite's integrity check and holds a readable collection (JSON meta,
    every vector of the stored width): a restore is refused before anything is renamed into place."""
    check = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ok = check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        problem = damage(check) if ok else "it fails SQLite's integrity check"
    except sqlite3.DatabaseError as exc:
        problem = f"it is not a readable SQLite database ({exc})"
    finally:
        check.close()
    if problem is not None:
        raise InvalidRequest(f"{path} cannot be restored: {problem}", "dir")
