"""Collections on a bad day (issue 23, findings 6, 9, 10): a re-embedding and readers of an evicted collection never
wait for each other's locks, a database locked past its timeout is a 503, one damaged collection never takes the
listing down, a restore is checked before it goes into place, and a full disk (a real, small tmpfs) answers 507
with every write applied whole or not at all. `o2v` meets both with one line and its exit code (75 and 74)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from service.index.backup import backup, restore
from service.index.engines.faiss.collection import DB_FILE, Options
from service.index.engines.faiss.registry import FaissCollections
from service.index.errors import InvalidRequest
from tests.disk_fixtures import fill
from tests.index_fixtures import DIM, SMALL, items, unit_vectors
from tests.server_process import ServerProcess
from tests.test_collections_api import API_KEY, KEY
from tests.test_collections_bad_input import reviews


def filled(folder: Path, name: str, n: int, options: Options | None = None, max_open: int = 64) -> FaissCollections:
    collections = FaissCollections(folder, SMALL, options or Options(), max_open=max_open)
    collection, _ = collections.create(name)
    collection.upsert(items(n), unit_vectors(n))
    return collections


def in_thread(fn: object, timeout: float) -> tuple[bool, object]:
    """(finished within `timeout`, its result or exception)."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())  # type: ignore[operator]
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), out[0] if out else None)


# -- finding 6: lock order


def test_reopening_an_evicted_collection_never_waits_for_the_write_lock(tmp_path: Path) -> None:
    """A re-embedding holds SQLite's write lock while it waits for the collection's lock; a reader reopening the
    evicted collection holds that lock, so its open must not wait for the write lock (it did: 60 s, then a 500)."""
    collections = filled(tmp_path, "a", 20, Options(busy_timeout_s=30.0))
    collection = collections.get("a")
    assert collection.evict() and not collection.is_open
    writer = sqlite3.connect(tmp_path / "a" / DB_FILE, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # what _switch holds while it builds the new index
    try:
        done, info = in_thread(collection.info, timeout=10)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert done, "the reader waited for SQLite's write lock while holding the collection's lock"
    assert isinstance(info, dict) and info["count"] == 20, info
    collections.close()


def test_reembedding_with_one_open_collection_and_readers_of_both(tmp_path: Path) -> None:
    """O2V_MAX_OPEN_COLLECTIONS=1: reads of a and b evict each other all along a re-embedding of a; none fails or
    stalls, and the re-embedding switches."""
    collections = filled(tmp_path, "a", 600, Options(busy_timeout_s=30.0), max_open=1)
    other, _ = collections.create("b")
    other.upsert(items(50), unit_vectors(50, seed=1))
    rng = np.random.default_rng(3)

    def embed(texts: list[str]) -> np.ndarray:
        time.sleep(0.02)
        return rng.standard_normal((len(texts), DIM)).astype(np.float32)

    errors: list[BaseException] = []
    slowest = [0.0]
    stop = threading.Event()

    def read() -> None:
        query = unit_vectors(1, seed=5)[0]
        while not stop.is_set():
            for name in ("a", "b"):
                started = time.monotonic()
                try:
                    collections.get(name).nearest(query, 3, {})
                    collections.get(name).info()
                except Exception as exc:
                    errors.append(exc)
                slowest[0] = max(slowest[0], time.monotonic() - started)

    readers = [threading.Thread(target=read, daemon=True) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        done, result = in_thread(lambda: collections.get("a").reembed(embed, "other-model", batch_size=16), 120)
    finally:
        stop.set()
        for reader in readers:
            reader.join(30)
    assert done and isinstance(result, dict), result
    assert result["reembedded"] == 600
    assert not errors, errors[:3]
    assert slowest[0] < 20, f"a read took {slowest[0]:.1f} s"
    assert collections.get("a").model() == "other-model"
    collections.close()


def test_a_database_locked_past_its_timeout_is_a_503_with_retry_after(tmp_path: Path) -> None:
    with reviews(tmp_path, index_busy_timeout_s=0.3) as client:
        holder = sqlite3.connect(tmp_path / "reviews" / DB_FILE, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another worker's long write
        try:
            body = {"items": [{"id": "x", "text": "a late review"}]}
            answer = client.post("/collections/reviews/items", json=body, headers=KEY)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert answer.status_code == 503, answer.text
        assert answer.headers.get("Retry-After") and "locked" in answer.json()["error"]["message"]
        assert client.post("/collections/reviews/items", json=body, headers=KEY).status_code == 200


# -- finding 9: one broken collection


def damage(folder: Path, how: str) -> None:
    path = folder / DB_FILE
    if how == "header":
        with path.open("r+b") as fh:
            fh.write(b"garbage, not SQLite" * 5)
        return
    db = sqlite3.connect(path, isolation_level=None)
    try:
        if how == "vector":
            db.execute("UPDATE items SET vector = x'00010203' WHERE row = (SELECT min(row) FROM items)")
        else:
            db.execute("UPDATE meta SET value = '{not json' WHERE key = 'index'")
    finally:
        db.close()
    (folder / "index.npz").unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["header", "vector", "meta"])
def test_a_broken_collection_is_listed_as_broken_and_the_others_serve(tmp_path: Path, how: str) -> None:
    with reviews(tmp_path) as client:
        assert client.put("/collections/broken", headers=KEY).status_code == 201
        body = {"items": [{"id": "1", "text": "to be damaged"}, {"id": "2", "text": "also"}]}
        assert client.post("/collections/broken/items", json=body, headers=KEY).status_code == 200
    damage(tmp_path / "broken", how)
    with reviews(tmp_path) as client:
        listing = client.get("/collections")
        assert listing.status_code == 200, listing.text
        assert [c["name"] for c in listing.json()["collections"]] == ["reviews"]
        [broken] = listing.json()["broken"]
        assert broken["name"] == "broken" and "damaged" in broken["message"]
        for answer in (
            client.get("/collections/broken"),
            client.post("/collections/broken/search", json={"query": "x"}),
        ):
            assert answer.status_code == 409, answer.text
            assert "damaged" in answer.json()["error"]["message"]
        found = client.post("/collections/reviews/search", json={"query": "great battery", "top_k": 2})
        assert found.status_code == 200 and len(found.json()["hits"]) == 2
        assert client.delete("/collections/broken", headers=KEY).status_code == 204
        assert client.get("/collections").json()["broken"] == []


def test_restore_checks_vector_lengths_before_anything_goes_into_place(tmp_path: Path) -> None:
    collections = filled(tmp_path / "data", "a", 10)
    backup(collections, "a", tmp_path / "backup")
    db = sqlite3.connect(tmp_path / "backup" / DB_FILE, isolation_level=None)
    db.execute("UPDATE items SET vector = x'0001' WHERE row = (SELECT max(row) FROM items)")
    db.close()
    with pytest.raises(InvalidRequest, match="bytes"):
        restore(collections, tmp_path / "backup", "copy")
    assert not (tmp_path / "data" / "copy").exists()
    assert collections.names() == ["a"]
    collections.close()


# -- finding 10: a full disk


def test_a_full_disk_answers_507_and_applies_each_write_whole_or_not_at_all(small_disk: Path) -> None:
    data = small_disk / "data"
    scores = [0.5 + 0.001 * i for i in range(200)]
    with reviews(data) as client:
        assert client.put("/drift/baseline/similarity", json={"scores": scores}, headers=KEY).status_code == 200
        before = client.get("/drift?stream=similarity").json()["streams"]["similarity"]["baseline"]
        filler = fill(small_disk)
        other = [0.1 + 0.001 * i for i in range(200)]
        answer = client.put("/drift/baseline/similarity", json={"scores": other}, headers=KEY)
        assert answer.status_code == 507, answer.text
        assert "disk is full" in answer.json()["error"]["message"]
        kept = client.get("/drift?stream=similarity").json()["streams"]["similarity"]["baseline"]
        assert kept == before, "a baseline that was not stored is active"
        answer = client.put("/drift/baseline/fresh", json={"scores": other}, headers=KEY)
        assert answer.status_code == 507 and "fresh" not in client.get("/drift").json()["streams"]

        answer = client.put("/collections/newcomer", headers=KEY)
        assert answer.status_code == 507, answer.text
        assert not (data / "newcomer" / DB_FILE).exists()
        body = {"items": [{"id": f"n{i}", "text": f"review number {i} " * 40} for i in range(4)]}
        answer = client.post("/collections/reviews/items", json=body, headers=KEY)
        assert answer.status_code in (200, 507), answer.text  # SQLite may still have room in its pages
        count = client.get("/collections/reviews").json()["count"]
        assert count == (8 if answer.status_code == 200 else 4)
        listing = client.get("/collections")
        assert listing.status_code == 200 and [c["name"] for c in listing.json()["collections"]] == ["reviews"]

        filler.unlink()
        assert client.put("/collections/newcomer", headers=KEY).status_code == 201
        assert client.put("/drift/baseline/fresh", json={"scores": other}, headers=KEY).status_code == 200
    with reviews(data) as client:  # what answered 200 survived the restart, what answered 507 never existed
        streams = client.get("/drift").json()["streams"]
        assert streams["similarity"]["baseline"] == before and "fresh" in streams
        assert client.get("/collections/reviews").json()["count"] == count


def test_shutdown_closes_every_collection_when_a_snapshot_fails(small_disk: Path) -> None:
    collections = FaissCollections(small_disk / "data", SMALL, Options(snapshot_every=10**9))
    for name in ("a", "b", "c"):
        collection, _ = collections.create(name)
        collection.upsert(items(200), unit_vectors(200))
    opened = [collections.get(name) for name in ("a", "b", "c")]
    filler = fill(small_disk)
    collections.close()  # every snapshot fails: no room
    assert not any(c.is_open for c in opened)
    filler.unlink()
    reopened = FaissCollections(small_disk / "data", SMALL)
    assert [reopened.get(n).info()["count"] for n in ("a", "b", "c")] == [200, 200, 200]
    reopened.close()


# -- the command line on a locked store and a full disk


def review_rows(folder: Path, n: int) -> Path:
    rows = folder / f"rows-{n}.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "text": f"review number {i}"}) + "\n" for i in range(n)))
    return rows


def one_error_line(err: str, command: str) -> None:
    """What `o2v` printed for a storage fault: its one `o2v COMMAND: error:` line, no traceback."""
    assert err.startswith(f"o2v {command}: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_cli_write_to_a_locked_store_exits_75_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("O2V_INDEX_BUSY_TIMEOUT_S", "0.3")
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["index", "load", "reviews", str(review_rows(tmp_path, 3)), "--quiet", *data]) == 0
    capsys.readouterr()
    holder = sqlite3.connect(tmp_path / "data" / "reviews" / DB_FILE, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a server's (or a re-embedding's) long write
    try:
        code = main(["index", "load", "reviews", str(review_rows(tmp_path, 5)), "--quiet", *data])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    assert code == 75, err
    one_error_line(err, "index")
    assert "locked" in err
    assert main(["index", "list", *data]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 3
    assert main(["index", "load", "reviews", str(review_rows(tmp_path, 5)), "--quiet", *data]) == 0


def test_cli_writes_on_a_full_disk_exit_74_and_keep_nothing(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(small_disk / "data")]
    assert main(["index", "load", "reviews", str(review_rows(tmp_path, 3)), "--quiet", *data]) == 0
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"scores": [0.5 + 0.001 * i for i in range(200)]}))
    capsys.readouterr()
    filler = fill(small_disk)
    writes = {
        "index": ["index", "load", "newcomer", str(review_rows(tmp_path, 3)), "--quiet", *data],
        "drift": ["drift", "baseline", "similarity", str(scores), *data],
    }
    for command, argv in writes.items():
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 74, (command, err)
        one_error_line(err, command)
        assert "disk is full" in err
    assert not (small_disk / "data" / "newcomer" / DB_FILE).exists()
    filler.unlink()
    for argv in writes.values():
        assert main(argv) == 0, capsys.readouterr().err


def test_a_baseline_sent_to_a_service_on_a_full_disk_exits_74(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"scores": [0.5 + 0.001 * i for i in range(200)]}))
    with ServerProcess({"O2V_DATA_DIR": str(small_disk / "data"), "O2V_API_KEY": API_KEY}) as server:
        argv = ["drift", "baseline", "fresh", str(scores), "--url", server.url, "--api-key", API_KEY]
        filler = fill(small_disk)
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 74, err
        one_error_line(err, "drift")
        assert "507 the disk is full" in err
        filler.unlink()
        assert main(argv) == 0, capsys.readouterr().err
