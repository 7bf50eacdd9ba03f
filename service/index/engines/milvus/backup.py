"""A Milvus collection to and from a backup file: the embedded engine's SQLite store format (backup.py).

Export reads the items page by page (query_iterator) and writes them in their write order, holding this process'
writes to the collection meanwhile; restore creates the collection and writes the items in row order with the
backup's model fingerprint, adopted by the first write as when they were first written.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.index.base import Item
from service.index.engines.faiss.store import Store, copy_checked
from service.index.engines.milvus.expressions import GIVEN

if TYPE_CHECKING:
    from service.index.engines.milvus.registry import MilvusCollections

RESTORE_BATCH = 1_000
COLUMNS = "id, text, metadata, vector, given"


def export(collections: MilvusCollections, name: str, path: Path) -> None:
    """Collection `name`'s items, settings and fingerprint as a store at `path`, in write order. Pages are staged
    in a temporary table and written out sorted by write number, so memory holds one batch."""
    collection = collections.get(name)
    store = Store(path)
    try:
        db = store.db
        db.execute("CREATE TEMP TABLE staged (seq INTEGER, id TEXT, text TEXT, metadata TEXT, vector BLOB, given INT)")
        with collections.writing(name, exclusive=True), collections.errors(name):
            target = collection.items_target()
            wanted = ["id", "text", "metadata", "tags", "seq", "vector"]
            for page in collection.connection.pages(target, wanted) if target else ():
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
            extras = collection.extras()
        with store.transaction():
            store.set_meta("index", collection.config.public())
            values = {"dim": collection.dim, "model": extras.get("model"), "attributes": extras.get("attributes")}
            for key, value in values.items():
                if value:
                    store.set_meta(key, value)
            for items, vectors in _batches(db.execute(f"SELECT {COLUMNS} FROM staged ORDER BY seq, id")):
                store.upsert(items, vectors)
    finally:
        store.close()


def restore(collections: MilvusCollections, name: str, path: Path) -> None:
    """Create collection `name` from the backup file at `path`: its settings, then the items in row order."""
    with tempfile.TemporaryDirectory(prefix="o2v-restore-") as folder:
        copy = Path(folder) / "items.sqlite"
        copy_checked(path, copy)
        db = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            db.execute("BEGIN")  # one consistent view
            meta = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}
            config = dict(meta.get("index") or {})
            collection, _ = collections.create(name, config.pop("index", None), config)
            for items, vectors in _batches(db.execute(f"SELECT {COLUMNS} FROM items ORDER BY row")):
                collection.upsert(items, vectors, meta.get("model"))
        finally:
            db.close()
    if meta.get("attributes"):
        collection.set_attributes(meta["attributes"])


def _batches(rows: sqlite3.Cursor) -> Iterator[tuple[list[Item], np.ndarray]]:
    """Rows of COLUMNS as items and their vectors, RESTORE_BATCH at a time."""
    while batch := rows.fetchmany(RESTORE_BATCH):
        items = [Item(i, t, json.loads(m), bool(g)) for i, t, m, _, g in batch]
        yield items, np.frombuffer(b"".join(row[3] for row in batch), np.float32).reshape(len(batch), -1)
