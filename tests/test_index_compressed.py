"""The compressed index kinds (hnsw_sq8, ivf_pq) on the real FAISS: recall against exact search with re-ranking from
the stored float vectors, persistence across a reopen, filters, parameters; and rebuilds built aside while reads and
writes go on (real threads)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from service.index.base import Item
from service.index.config import RERANK, IndexConfig, pq_parts
from service.index.engines.faiss.vector_index import build_streamed
from service.index.errors import InvalidRequest
from tests.index_fixtures import close_opened, registry

DIM = 32
COMPRESSED = ("hnsw_sq8", "ivf_pq")
CONFIG = IndexConfig(m=12, ef_construction=64, ef_search=64, nlist=16, nprobe=4, min_train=500, pq_m=8, rerank=40)
"""Search settings that do not look at every item (nprobe 4 of 16 lists): recall comes from the index, not a scan."""


def clustered(n: int, seed: int, centres: int = 20) -> np.ndarray:
    """Seeded unit vectors around `centres` random directions, as embeddings of a few topics lie."""
    rng = np.random.default_rng(seed)
    middle = np.random.default_rng(99).standard_normal((centres, DIM))
    x = middle[rng.integers(0, centres, n)] + 0.6 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def batch(n: int, start: int = 0) -> list[Item]:
    return [Item(f"item-{i}", f"text {i}", {"parity": i % 2}) for i in range(start, start + n)]


def exact(vectors: np.ndarray, query: np.ndarray, k: int, keep: np.ndarray | None = None) -> list[str]:
    scores = vectors @ query
    order = [i for i in np.argsort(-scores, kind="stable") if keep is None or keep[i]]
    return [f"item-{i}" for i in order[:k]]


def recall_at_10(collection, vectors: np.ndarray, queries: np.ndarray) -> float:
    found = [{h.id for h in collection.search(q, 10)} for q in queries]
    return float(np.mean([len(f & set(exact(vectors, q, 10))) / 10 for f, q in zip(found, queries, strict=True)]))


@pytest.fixture(params=COMPRESSED)
def filled(request, tmp_path):
    collection, _ = registry(tmp_path, CONFIG, filter_exact_max=5).create("c", request.param)
    vectors = clustered(2000, seed=1)
    collection.upsert(batch(2000), vectors)
    return collection, vectors


def test_recall_against_exact_and_scores_are_exact(filled) -> None:
    collection, vectors = filled
    queries = clustered(50, seed=2)
    assert recall_at_10(collection, vectors, queries) >= 0.95
    for query in queries[:5]:
        for hit in collection.search(query, 10):
            assert hit.score == pytest.approx(float(vectors[int(hit.id[5:])] @ query), abs=1e-5)
    assert collection.search(vectors[7], 1)[0].id == "item-7"


def test_every_hit_is_reranked_even_when_top_k_takes_them_all(tmp_path) -> None:
    """With top_k ≥ the items there are no extra candidates, yet the scores and order are still the exact ones."""
    collection, _ = registry(tmp_path, CONFIG).create("c", "hnsw_sq8")
    vectors = clustered(30, seed=13)
    collection.upsert(batch(30), vectors)
    query = clustered(1, seed=14)[0]
    hits = collection.search(query, 30)
    assert [h.id for h in hits] == exact(vectors, query, 30)
    assert [h.score for h in hits] == pytest.approx(sorted((vectors @ query).tolist(), reverse=True), abs=1e-6)


def test_filters_are_still_honoured(filled) -> None:
    collection, vectors = filled
    even = np.arange(len(vectors)) % 2 == 0
    found = []
    for query in clustered(20, seed=3):
        hits = collection.search(query, 10, {"parity": 0})
        assert all(h.metadata["parity"] == 0 for h in hits) and len(hits) == 10
        found.append(len({h.id for h in hits} & set(exact(vectors, query, 10, even))) / 10)
    assert np.mean(found) >= 0.9
    rare = collection.search(vectors[0], 10, {"i": 5})
    assert rare == []


def test_persisted_across_reopen(tmp_path) -> None:
    for kind in COMPRESSED:
        folder = tmp_path / kind
        collection, _ = registry(folder, CONFIG).create("c", kind)
        vectors = clustered(1500, seed=4)
        collection.upsert(batch(1500), vectors)
        collection.delete("item-3")
        queries = clustered(20, seed=5)
        before = [[h.id for h in collection.search(q, 10)] for q in queries]
        info = collection.info()
        collection.close()
        assert (folder / "c" / "index.npz").is_file()

        again = registry(folder, replace(CONFIG, rerank=7, pq_m=4)).get("c")  # the stored settings win
        assert again.info() == info and info["index"] == kind and info["rerank"] == 40
        assert [[h.id for h in again.search(q, 10)] for q in queries] == before
        assert all(h.id != "item-3" for h in again.search(vectors[3], 20))
        again.upsert(batch(1, start=5000), -vectors[:1])
        assert again.search(-vectors[0], 1)[0].id == "item-5000"
        again.close()


def test_ivf_pq_is_exact_until_trained_then_compressed(tmp_path) -> None:
    collection, _ = registry(tmp_path, CONFIG).create("c", "ivf_pq")
    vectors = clustered(600, seed=6)
    collection.upsert(batch(300), vectors[:300])
    assert collection.info()["trained"] is False and collection.info()["pq_parts"] is None
    collection.upsert(batch(300, start=300), vectors[300:])
    info = collection.info()
    assert info["trained"] is True and info["pq_parts"] == pq_parts(DIM, CONFIG.pq_m) == 8
    assert collection.search(vectors[400], 1)[0].id == "item-400"


def test_pq_parts_divide_the_dimension() -> None:
    assert pq_parts(384, 48) == 48 and pq_parts(384, 50) == 48 and pq_parts(100, 48) == 25 and pq_parts(7, 48) == 7


def test_parameters_per_kind(tmp_path) -> None:
    collections = registry(tmp_path, CONFIG)
    pq, _ = collections.create("a", "ivf_pq", {"pq_m": 16, "rerank": 100, "nprobe": 8})
    assert {k: pq.info()[k] for k in ("index", "nlist", "nprobe", "min_train", "pq_m", "rerank")} == {
        "index": "ivf_pq",
        "nlist": 16,
        "nprobe": 8,
        "min_train": 500,
        "pq_m": 16,
        "rerank": 100,
    }
    sq8, _ = collections.create("b", "hnsw_sq8", {"m": 8, "rerank": 20})
    assert {k: sq8.info()[k] for k in ("index", "m", "ef_construction", "ef_search", "rerank")} == {
        "index": "hnsw_sq8",
        "m": 8,
        "ef_construction": 64,
        "ef_search": 64,
        "rerank": 20,
    }
    cases = [
        ("hnsw_sq8", {"pq_m": 8}, "pq_m"),
        ("hnsw", {"rerank": 8}, "rerank"),
        ("ivf_pq", {"rerank": 0}, "rerank"),
        ("ivf_pq", {"pq_m": 385}, "pq_m"),
    ]
    for i, (kind, params, field) in enumerate(cases):
        with pytest.raises(InvalidRequest) as caught:
            collections.create(f"x{i}", kind, params)
        assert caught.value.field == field


@pytest.mark.parametrize("kind", ["hnsw", "hnsw_sq8"])
def test_reads_and_writes_go_on_while_a_rebuild_is_built_aside(tmp_path, kind) -> None:
    """Replacing a quarter of the items passes the tombstone share: the write returns at once, searches and writes
    keep answering on other threads while the new graph is built, and the writes made meanwhile are in it."""
    config = replace(CONFIG, ef_construction=200, rebuild_deleted_share=0.2)
    collection, _ = registry(tmp_path, config, rebuild_inline_max=0).create("c", kind)
    n = 20_000
    vectors = clustered(n, seed=7)
    collection.upsert(batch(n), vectors)
    moved = clustered(n // 4, seed=8)
    collection.upsert([Item(f"item-{i}", "moved", {}) for i in range(n // 4)], moved)
    assert collection.rebuilding, "the write that made the rebuild due returned before the build finished"

    answered: list[bool] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            assert collection.search(vectors[-1], 5)[0].id == f"item-{n - 1}"
            answered.append(collection.rebuilding)

    thread = threading.Thread(target=reader)
    thread.start()
    written_during = clustered(30, seed=9)
    collection.upsert(batch(30, start=n), written_during)
    writes_during = collection.rebuilding
    collection.delete(f"item-{n - 2}")
    deadline = time.monotonic() + 300
    while collection.rebuilding and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()

    assert not collection.rebuilding, "the rebuild finished and was swapped in"
    assert writes_during and any(answered), "a write and searches were answered while the rebuild ran"
    assert collection.info()["deleted"] in (0, 1)  # the delete made during the build is a tombstone of the new graph
    assert collection.index is not None and collection.index.size == collection.info()["count"] == n + 29
    for i in range(30):
        assert collection.search(written_during[i], 1)[0].id == f"item-{n + i}"
    assert collection.search(moved[0], 1)[0].text == "moved"
    assert all(h.id != f"item-{n - 2}" for h in collection.search(vectors[n - 2], 10))


def test_ivf_training_is_built_aside(tmp_path) -> None:
    collection, _ = registry(tmp_path, CONFIG, rebuild_inline_max=0).create("c", "ivf_pq")
    vectors = clustered(3000, seed=10)
    collection.upsert(batch(3000), vectors)
    late = clustered(5, seed=11)
    collection.upsert(batch(5, start=3000), late)  # applied to the flat index and replayed onto the trained one
    deadline = time.monotonic() + 120
    while collection.rebuilding and time.monotonic() < deadline:
        time.sleep(0.05)
    assert collection.info()["trained"] is True and collection.info()["count"] == 3005
    assert collection.index is not None and collection.index.size == 3005
    assert [collection.search(v, 1)[0].id for v in late] == [f"item-{3000 + i}" for i in range(5)]


def test_milvus_lite_builds_hnsw_sq8_and_refuses_ivf_pq(tmp_path) -> None:
    """Milvus answers hnsw_sq8 from its HNSW_SQ codes (no re-ranking there); Lite has no IVF_PQ, so a create asking
    for it is a bad request naming the index, not a failure at the first write."""
    pytest.importorskip("milvus_lite")
    try:
        collections = registry(tmp_path, CONFIG, "milvus")
        collection, _ = collections.create("c", "hnsw_sq8")
        vectors = clustered(300, seed=12)
        collection.upsert(batch(300), vectors)
        assert collection.info()["index"] == "hnsw_sq8"
        assert [collection.search(vectors[i], 1)[0].id for i in (0, 150, 299)] == ["item-0", "item-150", "item-299"]
        with pytest.raises(InvalidRequest) as caught:
            collections.create("d", "ivf_pq")
        assert caught.value.field == "index"
    finally:
        close_opened()


def test_put_creates_the_compressed_kinds_over_http(tmp_path) -> None:
    """PUT takes the new kinds and their parameters; a parameter of another kind is a 422 naming it."""
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.settings import Settings

    key = {"Authorization": "Bearer compressed-test-key-91c2"}
    app = create_app(Settings(data_dir=tmp_path, api_key="compressed-test-key-91c2"))
    with TestClient(app) as client:
        created = client.put("/collections/s", json={"index": "hnsw_sq8", "m": 12}, headers=key)
        assert created.status_code == 201
        expected = {"index": "hnsw_sq8", "m": 12, "rerank": RERANK}  # the parameter the PUT left out: the default
        assert {k: created.json()[k] for k in ("index", "m", "rerank")} == expected
        pq = client.put("/collections/p", json={"index": "ivf_pq", "pq_m": 24, "rerank": 200}, headers=key)
        assert pq.status_code == 201 and (pq.json()["pq_m"], pq.json()["rerank"]) == (24, 200)
        items = [{"id": f"i{n}", "text": t} for n, t in enumerate(["a red apple", "a green pear", "fast cars"])]
        assert client.post("/collections/s/items", json={"items": items}, headers=key).status_code == 200
        hits = client.post("/collections/s/search", json={"query": "a red apple", "top_k": 2}).json()["hits"]
        assert hits[0]["id"] == "i0" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
        for body, field in [({"index": "hnsw_sq8", "pq_m": 8}, "pq_m"), ({"index": "ivf_pq", "rerank": 0}, "rerank")]:
            response = client.put("/collections/x", json=body, headers=key)
            assert (response.status_code, response.json()["error"]["field"]) == (422, field)


@pytest.mark.parametrize("kind", ["hnsw_sq8", "ivf_pq", "ivf"])
def test_streamed_build_reads_chunks_and_a_training_sample(kind) -> None:
    """A rebuild aside reads its vectors in chunks (and IVF's training sample) instead of all of them at once."""
    vectors = clustered(3000, seed=15)
    rows = np.arange(10, 3010, dtype=np.int64)
    asked: list[int] = []

    def vectors_of(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.append(len(wanted))
        return wanted, vectors[wanted - 10]

    config = replace(CONFIG, kind=kind, nlist=8, min_train=1000)
    index = build_streamed(config, DIM, rows, vectors_of, chunk=500)
    sample = 0 if kind == "hnsw_sq8" else 8 * 256
    assert index.kind == kind and index.size == 3000
    assert asked == ([sample] if sample else []) + [500] * 6
    queries = clustered(20, seed=16)
    _, found = index.search(queries, 10, vectors_of)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 10
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]) >= 0.9
