"""SQLite store of one collection: items, metadata tags, vectors and the change log FAISS replays.

The store is the source of truth. `items.row` numbers a version of an item and is never reused (AUTOINCREMENT);
the FAISS index is keyed by it. Every add or removal of a row appends to `changes`, whose `seq` a FAISS snapshot
records as "covered"; replaying `changes` after that seq brings the snapshot up to date.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.durable import fsync_path
from service.index.base import Item
from service.index.errors import InvalidRequest, Unusable, raise_if_out_of_files
from service.index.metadata import ANY, Conditions, tags

ADD, REMOVE = 1, 0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL,
    given INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tags (
    key TEXT NOT NULL, value TEXT NOT NULL, row INTEGER NOT NULL, PRIMARY KEY (key, value, row)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_row ON tags (row);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, op INTEGER NOT NULL, row INTEGER NOT NULL);
"""
TABLES = {"meta", "items", "tags", "changes"}
MIGRATIONS = {"given": "ALTER TABLE items ADD COLUMN given INTEGER NOT NULL DEFAULT 0"}
"""Item columns a store may lack, and the statement `migrate` adds each with: a vector is the model's unless
marked given."""


@dataclass(frozen=True)
class Written:
    """What one committed write did, for the in-memory index to mirror."""

    removed: np.ndarray
    added: np.ndarray
    seq: int


class Store:
    """One connection, used under the owning collection's lock; autocommit mode with explicit transactions."""

    def __init__(self, path: Path, busy_timeout_s: float = 60.0) -> None:
        """`busy_timeout_s`: how long a write waits for another connection's write lock before SQLite's "database
        is locked" (answered 503 + Retry-After)."""
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        except sqlite3.Error as exc:
            raise_if_out_of_files(exc)
            raise
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=OFF")
            if not self._tables() >= TABLES:
                with self.transaction():
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            self.db.execute(statement)
            missing = missing_columns(self.db)
            if missing:
                name = path.parent.name
                message = f"collection {name!r} has no {', '.join(missing)} column: run o2v index migrate {name}"
                raise Unusable(message, "name")
        except BaseException as exc:
            try:
                raise_if_out_of_files(exc)  # asked before closing, which frees descriptors
            finally:
                self.db.close()  # keep none of the files open
            raise

    def _tables(self) -> set[str]:
        """The tables there are. Asked with a read, so that opening an existing store never waits for SQLite's
        write lock: a reader reopening an evicted collection holds the collection's lock while it opens, and a
        re-embedding holds the write lock while it waits for that one."""
        return {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def close(self) -> None:
        self.db.close()

    def damage(self) -> str | None:
        return damage(self.db)

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """BEGIN IMMEDIATE takes the write lock up front so a write never fails half-way on a busy database.

        Inside an open transaction this joins it, so reads that need one consistent view can ask for one anywhere.
        """
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- metadata of the collection itself

    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        """Call inside a transaction."""
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- writes (call inside a write transaction)

    def upsert(self, items: Sequence[Item], vectors: np.ndarray) -> Written:
        """Replace-or-insert each item; a replaced item's old row is removed, so it can never be a stale hit."""
        removed: list[int] = []
        added: list[int] = []
        for item, vec in zip(items, vectors, strict=True):
            old = self.db.execute("SELECT row FROM items WHERE id = ?", (item.id,)).fetchone()
            if old:
                self._remove_row(old[0])
                removed.append(old[0])
            cur = self.db.execute(
                "INSERT INTO items (id, text, metadata, vector, given) VALUES (?, ?, ?, ?, ?)",
                (
                    item.id,
                    item.text,
                    json.dumps(item.metadata, ensure_ascii=False),
                    vec.astype(np.float32).tobytes(),
                    int(item.given),
                ),
            )
            row = int(cur.lastrowid)  # type: ignore[arg-type]
            pairs = [(key, value, row) for key, value in tags(item.metadata)]
            self.db.executemany("INSERT INTO tags (key, value, row) VALUES (?, ?, ?)", pairs)
            self.db.execute("INSERT INTO changes (op, row) VALUES (?, ?)", (ADD, row))
            added.append(row)
        return Written(np.array(removed, dtype=np.int64), np.array(added, dtype=np.int64), self.last_seq())

    def delete(self, item_id: str) -> Written | None:
        old = self.db.execute("SELECT row FROM items WHERE id = ?", (item_id,)).fetchone()
        if not old:
            return None
        self._remove_row(old[0])
        return Written(np.array([old[0]], dtype=np.int64), np.empty(0, dtype=np.int64), self.last_seq())

    def _remove_row(self, row: int) -> None:
        self.db.execute("DELETE FROM items WHERE row = ?", (row,))
        self.db.execute("DELETE FROM tags WHERE row = ?", (row,))
        self.db.execute("INSERT INTO changes (op, row) VALUES (?, ?)", (REMOVE, row))

    def truncate_log(self, upto: int) -> None:
        """Forget changes a durable snapshot covers (call inside a write transaction)."""
        self.db.execute("DELETE FROM changes WHERE seq <= ?", (upto,))

    # -- reads

    def last_seq(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def data_version(self) -> int:
        """Changes whenever another connection (another process) commits."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items").fetchone()[0])

    def changes_since(self, seq: int) -> list[tuple[int, int, int]]:
        """(seq, op, row) after `seq`, oldest first."""
        return self.db.execute("SELECT seq, op, row FROM changes WHERE seq > ? ORDER BY seq", (seq,)).fetchall()

    def vectors(self, rows: Iterable[int] | None = None, dim: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(rows, vectors) of live items: all of them in row order, or those of `rows` that still exist.

        Filled chunk by chunk into arrays sized up front, so a million vectors never exist twice in memory.
        """
        with self.transaction(write=False):
            wanted = None if rows is None else list(rows)
            size = self.count() if wanted is None else len(wanted)
            ids = np.empty(size, dtype=np.int64)
            vectors = np.empty((size, dim), dtype=np.float32)
            filled = 0
            for cursor in self._vector_cursors(wanted):
                while chunk := cursor.fetchmany(4096):
                    ids[filled : filled + len(chunk)] = [row for row, _ in chunk]
                    blob = b"".join(vector for _, vector in chunk)
                    vectors[filled : filled + len(chunk)] = np.frombuffer(blob, dtype=np.float32).reshape(-1, dim)
                    filled += len(chunk)
        return ids[:filled], vectors[:filled]

    def _vector_cursors(self, rows: list[int] | None) -> Iterator[sqlite3.Cursor]:
        if rows is None:
            yield self.db.execute("SELECT row, vector FROM items ORDER BY row")
            return
        for chunk in _chunks(rows):
            marks = ",".join("?" * len(chunk))
            yield self.db.execute(f"SELECT row, vector FROM items WHERE row IN ({marks})", chunk)

    def items(self, rows: Sequence[int]) -> dict[int, Item]:
        out: dict[int, Item] = {}
        for chunk in _chunks(list(rows)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT row, id, text, metadata FROM items WHERE row IN ({marks})"
            for row, item_id, text, meta in self.db.execute(sql, chunk):
                out[row] = Item(item_id, text, json.loads(meta))
        return out

    def item(self, item_id: str, with_vector: bool = False) -> Item | None:
        found = self.db.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        return _item(found, with_vector) if found else None

    def texts(self) -> list[tuple[str, str, bool]]:
        """(id, text, given) of every item, in one consistent view (re-embedding compares them across passes)."""
        with self.transaction(write=False):
            return [(i, t, bool(g)) for i, t, g in self.db.execute("SELECT id, text, given FROM items")]

    def embedded_items(self) -> list[Item]:
        """The items whose vectors the collection's model made (not `given`), in row order."""
        rows = self.db.execute("SELECT id, text, metadata FROM items WHERE given = 0 ORDER BY row")
        return [Item(i, t, json.loads(m)) for i, t, m in rows]

    def scroll(self, after: str | None, limit: int, conditions: Conditions, with_vectors: bool = False) -> list[Item]:
        """Items by id (BINARY collation: UTF-8 byte order) after `after`, among those meeting `conditions`."""
        where, args = ["id > ?"] if after is not None else [], [after] if after is not None else []
        if conditions:
            sql, more = self._where(conditions)
            where.append(f"row IN ({sql})")
            args += more
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.execute(f"SELECT {ITEM_COLUMNS} FROM items {clause} ORDER BY id LIMIT ?", [*args, limit])
        return [_item(found, with_vectors) for found in rows]

    def ids(self) -> dict[int, str]:
        return dict(self.db.execute("SELECT row, id FROM items"))

    def _where(self, conditions: Conditions) -> tuple[str, list[str]]:
        parts, args = [], []
        for key, value in conditions.items():
            if value is ANY:
                parts.append("SELECT row FROM tags WHERE key = ?")
                args.append(key)
            else:
                parts.append("SELECT row FROM tags WHERE key = ? AND value = ?")
                args += [key, value]
        return " INTERSECT ".join(parts), args

    def count_matching(self, conditions: Conditions) -> int:
        if not conditions:
            return self.count()
        sql, args = self._where(conditions)
        return int(self.db.execute(f"SELECT count(*) FROM ({sql})", args).fetchone()[0])

    def rows(self) -> np.ndarray:
        """Every item's row, ascending."""
        return np.fromiter((r for (r,) in self.db.execute("SELECT row FROM items ORDER BY row")), np.int64)

    def rows_matching(self, conditions: Conditions) -> np.ndarray:
        sql, args = self._where(conditions)
        return np.array([r for (r,) in self.db.execute(sql, args)], dtype=np.int64)


def missing_columns(db: sqlite3.Connection) -> list[str]:
    """The MIGRATIONS columns the items table lacks."""
    have = {row[1] for row in db.execute("PRAGMA table_info(items)")}
    return [column for column in MIGRATIONS if column not in have]


def migrate(path: Path) -> list[str]:
    """Add the MIGRATIONS columns the store at `path` lacks, in one transaction; the columns added."""
    db = sqlite3.connect(path, isolation_level=None, timeout=60.0)
    try:
        db.execute("BEGIN IMMEDIATE")
        missing = missing_columns(db)
        for column in missing:
            db.execute(MIGRATIONS[column])
        db.execute("COMMIT")
    finally:
        db.close()
    return [f"items.{column} added" for column in missing]


def copy_checked(source: Path, target: Path) -> None:
    """Copy the store at `source` (a backup) to `target`, add the columns it lacks and check the copy (`check_file`):
    what goes into place is what was checked."""
    shutil.copyfile(source, target)
    with contextlib.suppress(sqlite3.DatabaseError):  # check_file names what is wrong with it
        migrate(target)
    fsync_path(target)
    check_file(target)


def check_file(path: Path) -> None:
    """InvalidRequest unless the file passes SQLite's integrity check and holds a readable collection (JSON meta,
    every vector of the stored width, every column): a restore is refused before anything is put into place."""
    check = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ok = check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        problem = damage(check) if ok else "it fails SQLite's integrity check"
        missing = missing_columns(check) if problem is None else []
        problem = problem or (f"it has no {', '.join(missing)} column" if missing else None)
    except sqlite3.DatabaseError as exc:
        problem = f"it is not a readable SQLite database ({exc})"
    finally:
        check.close()
    if problem is not None:
        raise InvalidRequest(f"{path} cannot be restored: {problem}", "dir")


def damage(db: sqlite3.Connection) -> str | None:
    """What makes a stored collection unreadable, or None: a meta value that is not JSON, index settings that are
    no object, a width that is no count, vectors whose length is not that width (a bad restore, a hand edit). Reads
    only lengths and the meta table, so it stays cheap for a large collection."""
    meta: dict[str, Any] = {}
    for key, value in db.execute("SELECT key, value FROM meta"):
        try:
            meta[key] = json.loads(value)
        except (TypeError, ValueError):
            return f"meta value {key!r} is not JSON"
    if "index" in meta and not isinstance(meta["index"], dict):
        return "meta index is not a settings object"
    dim = meta.get("dim")
    if dim is None:
        return None
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        return f"meta dim {dim!r} is not a vector width"
    wrong = db.execute(
        "SELECT id, length(vector) FROM items WHERE typeof(vector) != 'blob' OR length(vector) != ? LIMIT 1",
        (4 * dim,),
    ).fetchone()
    if wrong is not None:
        return f"item {wrong[0]!r} holds a vector of {wrong[1]} bytes, not {dim} float32 ({4 * dim} bytes)"
    return None


ITEM_COLUMNS = "id, text, metadata, given, vector"


def _item(found: tuple, with_vector: bool) -> Item:
    vector = np.frombuffer(found[4], dtype=np.float32).copy() if with_vector else None
    return Item(found[0], found[1], json.loads(found[2]), bool(found[3]), vector)


def _chunks(values: list, size: int = 900) -> Iterator[list]:
    """SQLite caps bound parameters per statement; 900 stays under every build's limit."""
    for i in range(0, len(values), size):
        yield values[i : i + size]
