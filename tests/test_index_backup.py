"""Backups (service/index/backup.py): a backup taken while another thread writes holds whole writes only, and
restores elsewhere into a collection with the same items, vectors, config and model fingerprint."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from service.cli import main
from service.index.backup import backup, restore
from service.index.errors import Conflict, InvalidRequest
from tests.index_fixtures import close_opened, items, registry, unit_vectors

BATCH = 25


def test_a_backup_under_concurrent_writes_restores_whole_writes(tmp_path) -> None:
    source = registry(tmp_path / "a", snapshot_every=100)
    collection, _ = source.create("live", "hnsw")
    vectors = unit_vectors(4000, seed=3)
    collection.upsert(items(BATCH), vectors[:BATCH], model="m@1")
    stop, written = threading.Event(), [BATCH]

    def writer() -> None:
        while not stop.is_set() and written[0] + BATCH <= len(vectors):
            start = written[0]
            collection.upsert(items(BATCH, start), vectors[start : start + BATCH])
            written[0] = start + BATCH

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 10 * BATCH:
            stop.wait(0.01)
        manifest = backup(source, "live", tmp_path / "backup")
        deadline = time.monotonic() + 30
        while written[0] <= manifest["count"] and written[0] < len(vectors) and time.monotonic() < deadline:
            stop.wait(0.01)  # the writer goes on after the copy: the backup never held it up for good
    finally:
        stop.set()
        thread.join()
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


def test_milvus_collections_are_refused_naming_the_store(tmp_path) -> None:
    milvus = registry(tmp_path, store="milvus")
    milvus.create("m")
    try:
        with pytest.raises(InvalidRequest) as refused:
            backup(milvus, "m", tmp_path / "bk")
        assert refused.value.field == "store"
    finally:
        close_opened()
