"""Re-embedding (Collection.reembed, `o2v index reembed`, POST /collections/{name}/reembed): every text is embedded
again by the served model and the collection switches at once; reads go on meanwhile, writes made meanwhile are
caught up, vectors callers sent are kept, and a kill before the switch leaves the old collection intact. On both
engines (the `store` fixture: Milvus Lite re-embeds into a new items collection and switches the catalog row)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.index.base import Item
from service.index.fingerprint import model_fingerprint
from service.settings import Settings
from tests.gateway_fixtures import onnx_encoder
from tests.index_fixtures import OPENED, SMALL, registry, store_env, use_store
from tests.test_collections_api import API_KEY, KEY

ENCODER = onnx_encoder()
SERVED = model_fingerprint(ENCODER)
OLD = "old-model@0000000000000000"
ROOT = Path(__file__).resolve().parents[1]


def texts(n: int) -> list[str]:
    return [f"sentence number {i} about {['cats', 'trains', 'rain', 'jazz'][i % 4]}" for i in range(n)]


def old_collection(folder: Path, n: int, kind: str = "flat", store: str = "faiss") -> tuple[object, np.ndarray]:
    """n texts stored with random vectors by the OLD model, plus one vector a caller sent (id "given")."""
    reg = registry(folder, SMALL, store)
    collection, _ = reg.create("c", kind)
    old = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
    items = [Item(f"t{i:05d}", t, {"label": i % 4}) for i, t in enumerate(texts(n))]
    collection.upsert(items, old, model=OLD)
    collection.upsert([Item("given", "", {}, True)], np.eye(384, dtype=np.float32)[:1])
    return reg, old / np.linalg.norm(old, axis=1, keepdims=True)


def shut(reg) -> None:
    """Close a registry now (a Milvus Lite one releases its file for the next process)."""
    if reg in OPENED:
        OPENED.remove(reg)
    reg.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_reembed_switches_every_text_keeps_given_vectors_and_reads_go_on(tmp_path, kind, store) -> None:
    reg, _ = old_collection(tmp_path, 400, kind, store)
    collection = reg.get("c")
    probe = np.random.default_rng(1).standard_normal(384).astype(np.float32)
    answers: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            answers.append(len(collection.search(probe, 5)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = collection.reembed(ENCODER.embed_texts, SERVED, batch_size=64)
    finally:
        stop.set()
        thread.join()
    assert result["reembedded"] == 400 and result["model"] == SERVED
    assert len(answers) > 1 and set(answers) == {5}  # reads never failed or came back short
    assert collection.info()["model"] == SERVED and collection.info()["count"] == 401
    stored = collection.items(["t00007", "given"], with_vectors=True)
    expected = ENCODER.embed_texts([texts(8)[7]])[0]
    assert np.allclose(stored[0].vector, expected / np.linalg.norm(expected), atol=1e-5)
    assert stored[0].metadata == {"label": 3} and not stored[0].given
    assert stored[1].given and np.allclose(stored[1].vector, np.eye(384)[0])
    assert collection.search(ENCODER.embed_texts([texts(8)[7]])[0], 1)[0].id == "t00007"
    assert collection.search(ENCODER.embed_texts([texts(8)[7]])[0], 1, {"label": 3})[0].id == "t00007"
    shut(reg)
    reopened = registry(tmp_path, SMALL, store).get("c")
    assert reopened.search(ENCODER.embed_texts([texts(8)[7]])[0], 1)[0].id == "t00007"
    assert reopened.info()["count"] == 401 and reopened.info()["model"] == SERVED


def test_texts_written_while_it_runs_are_caught_up(tmp_path, store) -> None:
    reg, _ = old_collection(tmp_path, 300, store=store)
    collection = reg.get("c")
    calls = [0]

    def embed(batch: list[str]) -> np.ndarray:
        calls[0] += 1
        if calls[0] == 2:  # a write lands while the first pass is under way
            collection.upsert([Item("t00000", "a brand new text", {})], np.eye(384, dtype=np.float32)[1:2])
            collection.upsert([Item("late", "written late", {})], np.eye(384, dtype=np.float32)[2:3])
            collection.delete("t00299")
        return ENCODER.embed_texts(batch)

    collection.reembed(embed, SERVED, batch_size=64)
    for item_id, text in [("t00000", "a brand new text"), ("late", "written late")]:
        vector = collection.items([item_id], with_vectors=True)[0].vector
        expected = ENCODER.embed_texts([text])[0]
        assert np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-5), item_id
    assert collection.items(["t00299"]) == [None] and collection.info()["count"] == 301
    shut(reg)


def test_a_kill_before_the_switch_leaves_the_old_collection(tmp_path, store) -> None:
    reg, old = old_collection(tmp_path, 3000, store=store)
    shut(reg)
    command = [sys.executable, "-m", "service.cli", "index", "reembed", "c", "--batch-size", "64"]
    env = {**os.environ, "O2V_DATA_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", **store_env(store, tmp_path)}
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        progress = []
        while len(progress) < 3:
            line = child.stderr.readline()
            assert line, "the child ended before it reported progress"
            if line.startswith("{"):
                progress.append(json.loads(line))
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        child.kill()
    assert 0 < progress[-1]["done"] < progress[-1]["total"]
    collection = registry(tmp_path, SMALL, store).get("c")
    assert collection.info()["model"] == OLD and collection.info()["count"] == 3001
    ids, vectors = collection.vectors()
    assert np.allclose(vectors[:3000], old, atol=1e-6) and ids[:3] == ["t00000", "t00001", "t00002"]


def test_the_route_runs_it_as_a_job_with_progress(tmp_path, monkeypatch, store) -> None:
    reg, _ = old_collection(tmp_path, 200, store=store)
    shut(reg)
    use_store(monkeypatch, store, tmp_path)
    with TestClient(create_app(Settings(data_dir=tmp_path, api_key=API_KEY), ENCODER)) as client:
        key = KEY
        refused = client.post("/collections/c/search", json={"query": "cats"})
        assert refused.status_code == 409
        started = client.post("/collections/c/reembed", headers=key)
        assert started.status_code == 202 and started.json()["model"] == SERVED
        for _ in range(600):
            info = client.get("/collections/c").json()
            if info["reembed"]["state"] != "running":
                break
            time.sleep(0.05)
        assert (
            info["reembed"] == {"state": "done", "model": SERVED, "done": 200, "total": 200} and info["model"] == SERVED
        )
        hits = client.post("/collections/c/search", json={"query": texts(5)[4], "top_k": 1}).json()["hits"]
        assert hits[0]["id"] == "t00004"
        assert client.post("/collections/nope/reembed", headers=key).status_code == 404


def test_a_job_read_as_done_comes_with_the_min_score_it_adopts(tmp_path, monkeypatch) -> None:
    """GET /collections/{c} reads the job before the collection: a job says "done" only once its switch and
    min_score are stored, so an answer that says "done" carries the min_score (read the other way round, an info
    read just before the job stored it came back with a "done" job and no min_score)."""
    reg, _ = old_collection(tmp_path, 50)
    shut(reg)
    with TestClient(create_app(Settings(data_dir=tmp_path, api_key=API_KEY), ENCODER)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        collection = services.collections.get("c")
        read = collection.info

        def info_then_the_job_ends() -> dict:
            answer = read()
            deadline = time.monotonic() + 60
            while services.reembed_jobs.status("c")["state"] == "running" and time.monotonic() < deadline:
                time.sleep(0.01)
            return answer

        monkeypatch.setattr(collection, "info", info_then_the_job_ends)
        services.reembed_jobs.start(collection, ENCODER.embed_texts, SERVED, min_score=0.4)
        answers = [client.get("/collections/c").json() for _ in range(2)]
        assert [a["reembed"]["state"] for a in answers][-1] == "done", answers
        assert all(a.get("min_score") == 0.4 for a in answers if a["reembed"]["state"] == "done"), answers


def test_a_failure_mid_way_leaves_the_milvus_collection_and_no_leftover(tmp_path) -> None:
    reg, old = old_collection(tmp_path, 300, store="milvus")
    collection = reg.get("c")
    calls = [0]

    def failing(batch: list[str]) -> np.ndarray:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("the encoder died")
        return ENCODER.embed_texts(batch)

    with pytest.raises(RuntimeError):
        collection.reembed(failing, SERVED, batch_size=64)
    assert collection.info()["model"] == OLD and collection.info()["count"] == 301
    ids, vectors = collection.vectors()
    assert np.allclose(vectors[:300], old, atol=1e-6) and ids[:2] == ["t00000", "t00001"]
    assert [c for c in collection.client.list_collections() if c.startswith("o2v_items_c")] == [collection.target]
    with pytest.raises(Exception) as refused:
        collection.reembed(ENCODER.embed_texts, SERVED, batch_size=64, cancelled=lambda: True)
    assert getattr(refused.value, "field", None) == "name" and collection.info()["model"] == OLD
    collection.reembed(ENCODER.embed_texts, SERVED, batch_size=64)
    assert collection.info()["model"] == SERVED
    assert [c for c in collection.client.list_collections() if c.startswith("o2v_items_c")] == [collection.target]
    reg.drop("c")
    assert not [c for c in collection.client.list_collections() if c.startswith("o2v_items_c")]
