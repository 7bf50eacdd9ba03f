"""Backups (service/index/backup.py): a backup taken while another thread writes holds whole writes only, and
restores elsewhere, into either engine, as a collection with the same items, vectors, config and model fingerprint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from service.cli import main
from service.index.backup import backup, restore
from service.index.base import Item, VectorCollection
from service.index.errors import Conflict
from tests.index_fixtures import DIM, close_opened, items, registry, unit_vectors

BATCH = 25


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    """Milvus Lite registries a test opened release their files."""
    yield
    close_opened()


class Writer:
    """Another thread upserting BATCH items at a time from `vectors[BATCH:]` until stopped or out of vectors; yields
    (stop event, [items written]) and joins the thread on exit."""

    def __init__(self, collection: VectorCollection, vectors: np.ndarray) -> None:
        self.collection, self.vectors = collection, vectors
        self.stop, self.written = threading.Event(), [BATCH]
        self.thread = threading.Thread(target=self._write)

    def _write(self) -> None:
        while not self.stop.is_set() and self.written[0] + BATCH <= len(self.vectors):
            start = self.written[0]
            self.collection.upsert(items(BATCH, start), self.vectors[start : start + BATCH])
            self.written[0] = start + BATCH

    def __enter__(self) -> tuple[threading.Event, list[int]]:
        self.thread.start()
        return self.stop, self.written

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_a_backup_under_concurrent_writes_restores_whole_writes(tmp_path) -> None:
    source = registry(tmp_path / "a", snapshot_every=100)
    collection, _ = source.create("live", "hnsw")
    vectors = unit_vectors(4000, seed=3)
    collection.upsert(items(BATCH), vectors[:BATCH], model="m@1")
    with Writer(collection, vectors) as (stop, written):
        while written[0] < 10 * BATCH:
            stop.wait(0.01)
        manifest = backup(source, "live", tmp_path / "backup")
        deadline = time.monotonic() + 30
        while written[0] <= manifest["count"] and written[0] < len(vectors) and time.monotonic() < deadline:
            stop.wait(0.01)  # the writer goes on after the copy: the backup never held it up for good
    assert written[0] > manifest["count"] or written[0] == len(vectors)
    assert manifest["count"] % BATCH == 0 and manifest["model"] == "m@1" and manifest["config"]["index"] == "hnsw"

    target = registry(tmp_path / "b")
    restored = restore(target, tmp_path / "backup", "copy")
    assert restored["count"] == manifest["count"]
    copy = target.get("copy")
    assert copy.info()["model"] == "m@1" and copy.config == collection.config
    n = manifest["count"]
    ids, stored = copy.vectors()
    assert ids == [f"item-{i}" for i in range(n)] and np.allclose(stored, vectors[:n])
    assert copy.search(vectors[n - 1], 1)[0].id == f"item-{n - 1}"
    with pytest.raises(Conflict):
        restore(target, tmp_path / "backup", "copy")
    with pytest.raises(Conflict):
        backup(source, "live", tmp_path / "backup")
    source.close()
    target.close()


def test_the_cli_backs_up_and_restores(tmp_path, capsys) -> None:
    source = registry(tmp_path / "a")
    source.create("c")[0].upsert(items(3), unit_vectors(3))
    source.close()
    assert main(["index", "backup", "c", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "a")]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 3
    assert main(["index", "restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out)["collection"] == "c"
    restored = registry(tmp_path / "b")
    assert restored.get("c").info()["count"] == 3
    restored.close()


def test_the_cli_backs_up_milvus_and_restores_into_the_embedded_engine(tmp_path, capsys, monkeypatch) -> None:
    source = registry(tmp_path / "a", store="milvus")
    source.create("c")[0].upsert(items(3), unit_vectors(3))
    close_opened()
    monkeypatch.setenv("O2V_VECTOR_STORE", "milvus")
    assert main(["index", "backup", "c", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "a")]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "milvus"
    monkeypatch.setenv("O2V_VECTOR_STORE", "faiss")
    assert main(["index", "restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 3
    restored = registry(tmp_path / "b")
    assert restored.get("c").vectors()[0] == ["item-0", "item-1", "item-2"]
    restored.close()


def test_a_milvus_backup_under_concurrent_writes_restores_into_either_engine(tmp_path) -> None:
    """On Milvus Lite this process' writes wait for the backup: whole writes only, every one acknowledged before."""
    source = registry(tmp_path / "a", store="milvus")
    collection, _ = source.create("live", "hnsw")
    vectors = unit_vectors(2000, seed=3)
    collection.upsert(items(BATCH), vectors[:BATCH], model="m@1")
    collection.upsert([Item("given", "sent", {"k": 1}, True)], unit_vectors(1, seed=9))
    collection.set_attributes({"min_score": 0.4})
    with Writer(collection, vectors) as (stop, written):
        while written[0] < 6 * BATCH:
            stop.wait(0.01)
        before = written[0]
        manifest = backup(source, "live", tmp_path / "backup")
    n = manifest["count"] - 1
    assert n % BATCH == 0 and n >= before and manifest["engine"] == "milvus"
    assert manifest["model"] == "m@1" and manifest["config"] == collection.config.public() and manifest["dim"] == DIM
    for engine in ("faiss", "milvus"):
        target = registry(tmp_path / engine, store=engine)
        restored = restore(target, tmp_path / "backup", "copy")
        copy = target.get("copy")
        assert restored["count"] == n + 1 and copy.info()["model"] == "m@1" and copy.config == collection.config
        assert copy.attributes() == {"min_score": 0.4}
        ids, stored = copy.vectors()
        assert ids == [f"item-{i}" for i in range(BATCH)] + ["given"] + [f"item-{i}" for i in range(BATCH, n)]
        assert np.allclose(stored[ids.index("item-7")], vectors[7], atol=1e-6)
        assert copy.items(["given"])[0] == Item("given", "sent", {"k": 1}, True)
        assert copy.search(vectors[n - 1], 1, {"parity": (n - 1) % 2})[0].id == f"item-{n - 1}"
        if engine == "faiss":
            target.close()
    source.close()


def test_an_embedded_backup_restores_into_milvus(tmp_path) -> None:
    source = registry(tmp_path / "a")
    source.create("c", "flat")[0].upsert(items(30), unit_vectors(30), model="m@2")
    backup(source, "c", tmp_path / "bk")
    source.close()
    target = registry(tmp_path / "b", store="milvus")
    assert restore(target, tmp_path / "bk")["count"] == 30
    copy = target.get("c")
    assert copy.info()["model"] == "m@2" and copy.count_where({"parity": 1}) == 15
    assert copy.vectors()[0] == [f"item-{i}" for i in range(30)]
    with pytest.raises(Conflict):
        restore(target, tmp_path / "bk")
