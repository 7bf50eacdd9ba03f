"""Durability: SIGKILL mid-write loses nothing acknowledged and shows nothing half-written; restarts keep all. On
Milvus the killed writer is a gateway replica, and the process that reads after it a replica restarted on the same
Milvus data."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from service.index.engines.faiss.store import Item
from tests.index_fixtures import KINDS, exact_ids, items, registry, unit_vectors
from tests.index_writer import BATCH, batch_vectors

REPO = Path(__file__).resolve().parent.parent


def acknowledged_until_killed(
    folder: Path, kind: str, wanted: int, store: str = "faiss", timeout: float = 60.0
) -> list[int]:
    """Run the writer, SIGKILL it once `wanted` batches are acknowledged; every batch number it printed."""
    command = [sys.executable, "-m", "tests.index_writer", str(folder), kind, store]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acked: list[int] = []
    with selectors.DefaultSelector() as sel:
        sel.register(child.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while len(acked) < wanted and time.monotonic() < deadline and sel.select(timeout=1.0) is not None:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(int(line))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    acked += [int(line) for line in child.stdout.read().split()]
    assert child.returncode == -signal.SIGKILL
    assert len(acked) >= wanted, f"writer acknowledged only {len(acked)} batches"
    return acked


@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_loses_nothing_acknowledged(tmp_path, kind, store) -> None:
    acked = acknowledged_until_killed(tmp_path, kind, wanted=40 + 7 * KINDS.index(kind), store=store)
    collection = registry(tmp_path, store=store).get("durable")
    ids, _ = collection.vectors()
    per_batch = Counter(int(i[1:].split("-")[0]) for i in ids if i != "hot")
    last = max(per_batch)
    assert last in (acked[-1], acked[-1] + 1), "at most the one unacknowledged batch may have committed"
    for b, n in per_batch.items():
        assert n == BATCH - 1 or (b == last and n == BATCH), f"batch {b} is half-written: {n} items"
    for b in acked:
        vectors = batch_vectors(b)
        for j in range(1, BATCH):
            assert collection.search(vectors[j], 1)[0].id == f"b{b}-{j}"
        assert all(h.id != f"b{b}-0" for h in collection.search(vectors[0], 5))
    hot = collection.items(["hot"])[0]
    assert hot is not None and int(hot.text) in (acked[-1], acked[-1] + 1)
    current = batch_vectors(int(hot.text))[BATCH]
    assert collection.search(current, 1)[0].id == "hot"
    for b in acked[:-1]:
        stale = [h for h in collection.search(batch_vectors(b)[BATCH], 10) if h.id == "hot"]
        assert all(h.score == pytest.approx(float(current @ batch_vectors(b)[BATCH]), abs=1e-5) for h in stale)


@pytest.mark.parametrize("kind", KINDS)
def test_restart_keeps_everything(tmp_path, kind, store) -> None:
    collections = registry(tmp_path, store=store, snapshot_every=50)
    collection, _ = collections.create("c", kind)
    vectors = unit_vectors(230)
    for start in range(0, 230, 10):
        collection.upsert(items(10, start=start), vectors[start : start + 10])
    collection.delete("item-4")
    collection.upsert([Item("item-8", "replaced", {"x": 1})], -vectors[8:9])
    before = collection.info()
    queries = unit_vectors(5, seed=3)
    expected = [[(h.id, h.text) for h in collection.search(q, 10)] for q in queries]

    crashed = registry(tmp_path, store=store).get("c")  # a second process (replica) sees the same files or Milvus
    assert crashed.info() == before
    assert [[(h.id, h.text) for h in crashed.search(q, 10)] for q in queries] == expected

    collections.close()
    reopened = registry(tmp_path, store=store).get("c")
    assert reopened.info() == before
    assert [[(h.id, h.text) for h in reopened.search(q, 10)] for q in queries] == expected
    assert reopened.search(-vectors[8], 1)[0].metadata == {"x": 1}


def test_damaged_snapshot_is_rebuilt_from_the_store(tmp_path) -> None:
    collections = registry(tmp_path)
    collections.create("c", "hnsw")[0].upsert(items(30), unit_vectors(30))
    collections.close()
    snap = tmp_path / "c" / "index.npz"
    assert snap.exists()
    snap.write_bytes(snap.read_bytes()[:100])
    collection = registry(tmp_path).get("c")
    assert collection.info()["count"] == 30
    assert collection.search(unit_vectors(30)[12], 1)[0].id == "item-12"


def test_another_worker_sees_writes_even_after_log_truncation(tmp_path) -> None:
    writer = registry(tmp_path, snapshot_every=20).create("c", "hnsw")[0]
    reader = registry(tmp_path).get("c")
    vectors = unit_vectors(60)
    writer.upsert(items(10), vectors[:10])
    assert reader.search(vectors[3], 1)[0].id == "item-3"
    writer.upsert(items(50, start=10), vectors[10:])  # snapshots, and forgets the log the reader has not read
    writer.delete("item-3")
    assert reader.info()["count"] == 59
    ids = [f"item-{i}" for i in range(60) if i != 3]
    assert [h.id for h in reader.search(vectors[3], 5)] == exact_ids(np.delete(vectors, 3, axis=0), ids, vectors[3], 5)
    reader.upsert([Item("from-reader", "", {})], vectors[:1])
    assert writer.search(vectors[0], 2)[1].id in ("from-reader", "item-0")


def test_a_store_without_the_given_column_is_refused_until_migrated(tmp_path, capsys) -> None:
    """A store whose items table lacks `given` is a 409 naming `o2v index migrate`; the command adds the column
    (its items read as embedded by the model), says what it changed, and changes nothing the second time."""
    import json
    import sqlite3

    from service.cli import main
    from service.index.engines.faiss.collection import DB_FILE
    from service.index.errors import Unusable
    from tests.index_fixtures import SMALL, items, registry, unit_vectors

    reg = registry(tmp_path, SMALL)
    reg.create("bare")[0].upsert(items(3), unit_vectors(3))
    reg.create("made")[0].upsert(items(2), unit_vectors(2))
    reg.close()
    db = sqlite3.connect(tmp_path / "bare" / DB_FILE)
    db.execute("ALTER TABLE items DROP COLUMN given")
    db.commit()
    db.close()
    with pytest.raises(Unusable, match="o2v index migrate bare"):
        registry(tmp_path, SMALL).get("bare")
    assert main(["index", "migrate", "--data-dir", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"collection": "bare", "changes": ["items.given added"]},
        {"collection": "made", "changes": []},
    ]
    collection = registry(tmp_path, SMALL).get("bare")
    found = collection.items(["item-1"])[0]
    assert found is not None and not found.given and collection.info()["count"] == 3
    collection.upsert(items(1, 5), unit_vectors(1))
    assert collection.info()["count"] == 4
    assert main(["index", "migrate", "bare", "--data-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"collection": "bare", "changes": []}
