"""Collections under attack and bad input: each answers a 4xx naming its field, nothing crashes, hangs or is
lost. Through the real app, the bundled model and real FAISS + SQLite (and Milvus Lite where the
behaviour is the engine's); what could take a process down runs in a child process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.index.base import check_items, check_query
from service.index.cluster import Cancelled, cluster
from service.index.engines.faiss import mirror
from service.index.engines.faiss.collection import Options
from service.index.engines.faiss.registry import FaissCollections
from service.index.engines.faiss.store import Item
from service.index.engines.faiss.vector_index import IndexConfig
from service.index.errors import InvalidRequest
from service.settings import Settings
from tests.gateway_fixtures import onnx_encoder
from tests.index_fixtures import DIM, SMALL, items, registry, unit_vectors, use_store
from tests.test_collections_api import API_KEY, KEY, REVIEWS

REPO = Path(__file__).resolve().parent.parent


def app_settings(data_dir: Path, **overrides: Any) -> Settings:
    limits = {"max_batch_size": 4, "max_top_k": 20, "max_clusters": 3, **overrides}
    return Settings(data_dir=data_dir, api_key=API_KEY, **limits)


@contextmanager
def reviews(data_dir: Path, **overrides: Any) -> Iterator[TestClient]:
    """The app with a flat collection "reviews" of the four REVIEWS, around the session's encoder."""
    with TestClient(create_app(app_settings(data_dir, **overrides), onnx_encoder())) as client:
        client.put("/collections/reviews", headers=KEY)
        body = {"items": [{"id": i, "text": t, "metadata": m} for i, t, m in REVIEWS]}
        assert client.post("/collections/reviews/items", json=body, headers=KEY).json() == {"upserted": 4}
        yield client


@pytest.fixture
def client(tmp_path, store, monkeypatch) -> Iterator[TestClient]:
    """On each engine."""
    use_store(monkeypatch, store, tmp_path)
    with reviews(tmp_path, metadata_max_bytes=1024) as client:
        yield client


@pytest.fixture
def faiss_client(tmp_path) -> Iterator[TestClient]:
    """For what the HTTP layer alone decides."""
    with reviews(tmp_path) as client:
        yield client


def send(client: TestClient, method: str, url: str, body: Any) -> Any:
    """The body as Python's json writes it: lone surrogates as \\ud800 escapes, NaN and Infinity as bare tokens
    (httpx's own encoder refuses both, and an attacker's client would not)."""
    headers = {"Content-Type": "application/json", **KEY}
    return client.request(method, url, content=json.dumps(body).encode(), headers=headers)


def refused(response: Any, field: str, status: int = 422) -> bool:
    error = response.json()["error"]
    return (response.status_code, error["field"]) == (status, field)


def run_child(code: str, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess:
    """Python code in a fresh process (a crash there is a failed test, not a dead test run)."""
    command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


# -- 1. index parameters FAISS cannot run, and collections stored with them


def test_index_parameters_below_what_the_engines_take_are_422(client) -> None:
    for body, field in [
        ({"index": "hnsw", "m": 1}, "m"),
        ({"index": "hnsw", "m": 0}, "m"),
        ({"index": "hnsw", "ef_search": 0}, "ef_search"),
        ({"index": "hnsw", "ef_construction": 0}, "ef_construction"),
        ({"index": "ivf", "nlist": 0}, "nlist"),
        ({"index": "ivf", "nprobe": 0}, "nprobe"),
        ({"index": "ivf", "min_train": 0}, "min_train"),
    ]:
        assert refused(client.put("/collections/p", json=body, headers=KEY), field), body
    with pytest.raises(InvalidRequest) as err:
        IndexConfig().with_params("hnsw", {"m": 1})
    assert err.value.field == "m" and "from 2" in err.value.message
    smallest = {"index": "hnsw", "m": 2, "ef_construction": 1, "ef_search": 1}
    assert client.put("/collections/p", json=smallest, headers=KEY).status_code == 201
    vectors = unit_vectors(60, dim=384).tolist()
    body = {"items": [{"id": f"v{i}", "vector": v} for i, v in enumerate(vectors[:4])]}
    assert client.post("/collections/p/items", json=body, headers=KEY).status_code == 200
    hits = client.post("/collections/p/search", json={"vector": vectors[2], "top_k": 1}).json()["hits"]
    assert hits[0]["id"] == "v2"


BROKEN_CHILD = """
import json, sqlite3, sys
from pathlib import Path
import numpy as np
from fastapi.testclient import TestClient
from service.api.app import create_app
from tests.index_fixtures import registry, store_settings
from tests.test_collections_bad_input import KEY, app_settings

data, store = Path(sys.argv[1]), sys.argv[2]
vectors = np.random.default_rng(0).standard_normal((50, 16)).tolist()
with TestClient(create_app(app_settings(data, **store_settings(store, data)))) as client:
    client.put("/collections/ok", headers=KEY)
    client.put("/collections/c", json={"index": "hnsw"}, headers=KEY)
    for name in ("ok", "c"):
        for start in range(0, 50, 4):
            batch = [{"id": f"i{i}", "vector": vectors[i]} for i in range(start, min(start + 4, 50))]
            assert client.post(f"/collections/{name}/items", json={"items": batch}, headers=KEY).status_code == 200
old = {"index": "hnsw", "m": 1, "ef_construction": 40, "ef_search": 64}  # stored below the engine-safe minimum
if store == "faiss":
    db = sqlite3.connect(data / "c" / "items.sqlite")
    db.execute("UPDATE meta SET value = ? WHERE key = 'index'", (json.dumps(old),))
    db.commit()
    db.close()
    (data / "c" / "index.npz").unlink()  # the next open rebuilds the graph with m=1
else:
    catalog = registry(data, store=store)
    catalog.catalog.write("c", old, 16)
    assert catalog.catalog.row("c", "Strong")["config"] == old  # consumed: the next process' Bounded read sees it
    catalog.close()
out = {}
with TestClient(create_app(app_settings(data, **store_settings(store, data)))) as client:
    answer = client.get("/collections/c")
    out["info"] = [answer.status_code, answer.json()["error"]]
    out["list"] = [c["name"] for c in client.get("/collections").json()["collections"]]
    item = {"items": [{"id": "x", "vector": vectors[0]}]}
    out["upsert"] = client.post("/collections/c/items", json=item, headers=KEY).status_code
    out["search"] = client.post("/collections/c/search", json={"vector": vectors[0]}).status_code
    out["put"] = client.put("/collections/c", json={"index": "hnsw"}, headers=KEY).status_code
    out["ok"] = client.post("/collections/ok/search", json={"vector": vectors[3], "top_k": 1}).json()["hits"][0]["id"]
    out["drop"] = client.delete("/collections/c", headers=KEY).status_code
    out["again"] = client.put("/collections/c", json={"index": "hnsw", "m": 2}, headers=KEY).status_code
print(json.dumps(out))
"""


def test_a_collection_stored_with_unusable_settings_is_refused_not_crashed(tmp_path, store) -> None:
    """A collection stored with m=1 (which crashes libfaiss when opened) is a 409 naming it and the parameter; the
    others and the list work, and it can be dropped and made again."""
    child = run_child(BROKEN_CHILD, str(tmp_path), store)
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    status, error = out["info"]
    assert status == 409 and error["field"] == "m" and "'c'" in error["message"], error
    assert out["list"] == ["ok"]
    assert [out[k] for k in ("upsert", "search", "put", "ok", "drop", "again")] == [409, 409, 409, "i3", 204, 201]


# -- 3. clustering cannot starve the rest


def test_cluster_work_past_the_limit_is_422_naming_k(tmp_path, store, monkeypatch) -> None:
    use_store(monkeypatch, store, tmp_path)
    with reviews(tmp_path, max_cluster_work=2 * 4 * 5 - 1) as client:
        response = client.post("/collections/reviews/cluster", json={"k": 2})
        assert refused(response, "k") and "O2V_MAX_CLUSTER_WORK" in response.json()["error"]["message"]
        assert client.post("/collections/reviews/cluster", json={"k": 1}).status_code == 200


def test_cluster_stops_between_restarts_once_cancelled(tmp_path) -> None:
    collection, _ = registry(tmp_path).create("c")
    collection.upsert(items(40), unit_vectors(40))
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(Cancelled):
        cluster(collection, 4, cancelled=cancelled)
    assert len(asked) == 3, "asked before each restart, stopped at the third"
    assert cluster(collection, 4) == cluster(collection, 4, cancelled=lambda: False)


def test_a_running_cluster_leaves_readyz_fast_and_a_second_one_gets_503(tmp_path) -> None:
    loader = FaissCollections(tmp_path)
    loader.create("big")[0].upsert([Item(f"i{i}", "", {}) for i in range(6000)], unit_vectors(6000, seed=3))
    loader.close()
    with TestClient(create_app(app_settings(tmp_path, max_clusters=1000, max_cluster_work=10**9))) as client:
        heavy = client.app.state.services.heavy_jobs
        first: list[Any] = []
        worker = threading.Thread(target=lambda: first.append(client.post("/collections/big/cluster", json={"k": 600})))
        worker.start()
        deadline = time.monotonic() + 30
        while heavy.running == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert heavy.running == 1, "the first cluster job never started"
        second = client.post("/collections/big/cluster", json={"k": 2})
        assert second.status_code == 503 and second.headers["Retry-After"] == "1", second.text
        for path in ("/readyz", "/healthz"):
            started = time.monotonic()
            assert client.get(path).status_code == 200
            assert time.monotonic() - started < 1.0, f"{path} waited behind the cluster job"
        assert heavy.running == 1, "the first job should still be running (make it bigger if this machine is fast)"
        worker.join(120)
        assert first[0].status_code == 200 and sum(c["size"] for c in first[0].json()["clusters"]) == 6000
        assert heavy.running == 0
        assert client.post("/collections/big/cluster", json={"k": 2}).status_code == 200


def test_a_cluster_whose_caller_went_away_stops_and_frees_its_slot(tmp_path, monkeypatch) -> None:
    """Through a real uvicorn: the client closes its connection during a job of 1000 restarts (minutes of work);
    the job stops at its next restart and frees its slot within seconds."""
    monkeypatch.setattr("service.index.cluster.NREDO", 1000)
    loader = FaissCollections(tmp_path)
    loader.create("big")[0].upsert([Item(f"i{i}", "", {}) for i in range(3000)], unit_vectors(3000, seed=3))
    loader.close()
    app = create_app(app_settings(tmp_path, max_clusters=1000, max_cluster_work=10**12))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        body = json.dumps({"k": 100}).encode()
        head = "POST /collections/big/cluster HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            while app.state.services.heavy_jobs.running == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert app.state.services.heavy_jobs.running == 1
            time.sleep(0.3)
        gone = time.monotonic()
        while app.state.services.heavy_jobs.running and time.monotonic() - gone < 30:
            time.sleep(0.02)
        assert app.state.services.heavy_jobs.running == 0 and time.monotonic() - gone < 10
    finally:
        server.should_exit = True
        thread.join(60)


# -- 5, 6, 7, 8, 13: inputs


def test_a_filter_has_a_bounded_number_of_keys(client) -> None:
    for n in (33, 501):
        body = {"query": "food", "filter": {f"k{i}": i for i in range(n)}}
        response = client.post("/collections/reviews/search", json=body)
        assert refused(response, "filter") and "32" in response.json()["error"]["message"], n
    body = {"query": "food", "filter": {f"k{i}": i for i in range(32)}}
    assert client.post("/collections/reviews/search", json=body).json() == {"hits": []}


SURROGATE = "\ud800"


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("search", {"query": "x", "filter": {"a": SURROGATE}}, "filter.a"),
        ("search", {"query": "x", "filter": {SURROGATE: 1}}, "filter"),
        ("search", {"query": SURROGATE}, "query"),
        ("items", {"items": [{"id": "n", "text": "t", "metadata": {"a": SURROGATE}}]}, "items[0].metadata"),
        ("items", {"items": [{"id": "n", "text": "t", "metadata": {SURROGATE: 1}}]}, "items[0].metadata"),
        ("items", {"items": [{"id": "n", "text": "t", "metadata": {"a": {"b": [SURROGATE]}}}]}, "items[0].metadata"),
        ("items", {"items": [{"id": SURROGATE, "text": "t"}]}, "items[0].id"),
        ("items", {"items": [{"id": "n", "text": "a" + SURROGATE}]}, "items[0].text"),
        (
            "items",
            {"items": [{"id": "n", "text": "t"}, {"id": "m", "vector": [1.0] * 384, "text": SURROGATE}]},
            "items[1].text",
        ),
        ("classify", {"text": "x", "label_key": SURROGATE}, "label_key"),
        ("classify", {"text": SURROGATE}, "text"),
    ],
)
def test_lone_surrogates_are_422_naming_the_field(client, url, body, field) -> None:
    response = send(client, "POST", f"/collections/reviews/{url}", body)
    assert refused(response, field), response.text
    assert client.get("/collections/reviews").json()["count"] == 4
    assert client.post("/collections/reviews/search", json={"query": "food"}).status_code == 200


def test_cluster_seed_is_a_non_negative_32_bit_int(faiss_client) -> None:
    for seed in (2**31, -(2**31) - 1, -1, 2**64, 1.5, True, "7"):
        response = send(faiss_client, "POST", "/collections/reviews/cluster", {"k": 2, "seed": seed})
        assert refused(response, "seed"), seed
    for seed in (0, 2**31 - 1):
        answers = [faiss_client.post("/collections/reviews/cluster", json={"k": 2, "seed": seed}) for _ in range(2)]
        assert answers[0].status_code == 200 and answers[0].json() == answers[1].json()


def test_metadata_that_no_answer_could_carry_is_refused_at_upsert(client) -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}
    for metadata in [
        {"x": 10**40},
        {"x": 2**63},
        {"x": -(2**63) - 1},
        {"x": [1, {"y": 10**19}]},
        deep,
        {"x": float("nan")},
        {"x": [float("inf")]},
        {"x": 1e400},
        {"s": "a" * 1100},  # past metadata_max_bytes=1024
    ]:
        body = {"items": [{"id": "m", "text": "t", "metadata": metadata}]}
        assert refused(send(client, "POST", "/collections/reviews/items", body), "items[0].metadata"), metadata
    assert client.get("/collections/reviews").json()["count"] == 4
    edges = {"max": 2**63 - 1, "min": -(2**63), "nest": {"a": {"b": [1.5, None, True]}}}
    body = {"items": [{"id": "m", "text": "edge cases", "metadata": edges}]}
    assert client.post("/collections/reviews/items", json=body, headers=KEY).status_code == 200
    hits = client.post("/collections/reviews/search", json={"query": "edge cases", "top_k": 5}).json()["hits"]
    assert [h["metadata"] for h in hits if h["id"] == "m"] == [edges]
    assert (
        client.post("/collections/reviews/search", json={"query": "x", "filter": {"max": 2**63 - 1}}).json()["hits"][0][
            "id"
        ]
        == "m"
    )


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("classify", {"text": "x", "min_score": float("nan")}, "min_score"),
        ("classify", {"text": "x", "min_score": float("inf")}, "min_score"),
        ("classify", {"text": "x", "min_score": float("-inf")}, "min_score"),
        ("classify", {"text": "x", "min_score": 1e400}, "min_score"),
        ("classify", {"text": "x", "min_score": False}, "min_score"),
        ("classify", {"text": "x", "min_score": "0.5"}, "min_score"),
        ("classify", {"text": "x", "k": True}, "k"),
        ("classify", {"text": "x", "k": 2.0}, "k"),
        ("search", {"query": "x", "top_k": "5"}, "top_k"),
        ("search", {"query": "x", "top_k": True}, "top_k"),
        ("search", {"vector": [float("nan")] * 384}, "vector[0]"),
        ("search", {"vector": [True] * 384}, "vector[0]"),
        ("search", {"query": 5}, "query"),
        ("cluster", {"k": "2"}, "k"),
        ("cluster", {"k": 2, "representatives": True}, "representatives"),
        ("items", {"items": [{"id": 7, "text": "t"}]}, "items[0].id"),
        ("items", {"items": [{"id": "v", "vector": [1, True] + [0.5] * 382}]}, "items[0].vector[1]"),
    ],
)
def test_request_types_are_strict_and_numbers_finite(faiss_client, url, body, field) -> None:
    assert refused(send(faiss_client, "POST", f"/collections/reviews/{url}", body), field)


def test_create_parameters_are_strict(faiss_client) -> None:
    for body, field in [
        ({"index": "hnsw", "m": "8"}, "m"),
        ({"index": "hnsw", "m": True}, "m"),
        ({"index": "ivf", "nlist": 8.0}, "nlist"),
        ({"index": 1}, "index"),
    ]:
        assert refused(send(faiss_client, "PUT", "/collections/s", body), field), body
    good = {"text": "x", "min_score": 0, "k": 2}
    assert faiss_client.post("/collections/reviews/classify", json=good).status_code == 200


# -- 15. one rule for stored and query vectors


def test_stored_and_query_vectors_follow_one_rule(client) -> None:
    huge = [1e38] * 192 + [-1e38] * 192  # float32 norm: inf
    tiny = [1e-45] * 384  # float32 subnormals; float32 norm: 0
    body = {"items": [{"id": "huge", "vector": huge}, {"id": "tiny", "vector": tiny}]}
    assert client.post("/collections/reviews/items", json=body, headers=KEY).json() == {"upserted": 2}
    for vector, want in ((huge, "huge"), (tiny, "tiny")):
        hit = client.post("/collections/reviews/search", json={"vector": vector, "top_k": 1}).json()["hits"][0]
        assert hit["id"] == want and hit["score"] == pytest.approx(1.0, abs=1e-5)
    for bad in ([1e39] * 384, [0.0] * 384, [1e-46] * 384):  # inf, zero, zero once float32
        upsert = client.post("/collections/reviews/items", json={"items": [{"id": "b", "vector": bad}]}, headers=KEY)
        assert refused(upsert, "items[0].vector")
        assert refused(client.post("/collections/reviews/search", json={"vector": bad}), "vector")


def test_check_items_and_check_query_agree() -> None:
    rows = [[1e38] * DIM, [1e-45] * DIM, [3e38] * DIM, [np.nan] + [1.0] * (DIM - 1), [0.0] * DIM, [-1e-40] * DIM]
    for dtype in (np.float32, np.float64):
        for row in rows:
            vector = np.array(row, dtype=dtype)
            try:
                stored = check_items([Item("a", "", {})], vector[None, :])[1][0]
            except InvalidRequest:
                stored = None
            try:
                query = check_query(vector, DIM)
            except InvalidRequest:
                query = None
            assert (stored is None) == (query is None), (dtype, row[:2])
            if stored is not None:
                assert np.allclose(stored, query) and abs(float(np.linalg.norm(stored)) - 1) < 1e-5


# -- 11. file descriptors


def sqlite_files_open() -> int:
    return sum(1 for fd in os.listdir("/proc/self/fd") if ".sqlite" in os.path.realpath(f"/proc/self/fd/{fd}"))


def test_open_collections_are_bounded_and_reopen_with_everything(tmp_path) -> None:
    before = sqlite_files_open()
    collections = FaissCollections(tmp_path, SMALL, Options(snapshot_every=7), max_open=2)
    names = [f"c{i}" for i in range(6)]
    vectors = unit_vectors(60)
    for round_ in range(3):
        for n, name in enumerate(names):
            collection, _ = collections.create(name, ("flat", "hnsw", "ivf")[n % 3])
            start = 20 * round_
            collection.upsert(items(20, start=start, owner=name), vectors[start : start + 20])
            assert sqlite_files_open() - before <= 3 * 2
    handles = {name: collections.get(name) for name in names}
    errors: list[BaseException] = []

    def hammer(name: str) -> None:
        try:
            for i in range(15):
                handle = handles[name]  # a handle kept across evictions reopens
                handle.upsert([Item(f"{name}-extra-{i}", "", {"owner": name})], vectors[i : i + 1])
                assert handle.search(vectors[i], 1, {"owner": name})[0].id in (f"item-{i}", f"{name}-extra-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sqlite_files_open() - before <= 3 * 2
    collections.close()
    again = FaissCollections(tmp_path, SMALL)
    for name in names:
        collection = again.get(name)
        assert collection.info()["count"] == 75
        assert collection.search(vectors[33], 1, {"owner": name})[0].id == "item-33"
    again.close()


FDS_CHILD = """
import json, resource, sys
from pathlib import Path
from fastapi.testclient import TestClient
from service.api.app import create_app
from tests.test_collections_bad_input import KEY, app_settings

data, max_open = Path(sys.argv[1]), int(sys.argv[2])
vector = [0.5] * 384
statuses = []
with TestClient(create_app(app_settings(data, max_open_collections=max_open))) as client:
    client.get("/readyz")
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(__import__("os").listdir("/proc/self/fd")) + 60, 4096))
    retry_after = None
    for i in range(60):
        put = client.put(f"/collections/c{i}", headers=KEY)
        body = {"items": [{"id": "a", "vector": vector}]}
        post = client.post(f"/collections/c{i}/items", json=body, headers=KEY)
        search = client.post(f"/collections/c{i}/search", json={"vector": vector})
        for r in (put, post, search):
            statuses.append(r.status_code)
            if r.status_code == 503:
                retry_after = r.headers.get("Retry-After")
    listed = client.get("/collections")
    statuses.append(listed.status_code)
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    count = len(client.get("/collections").json()["collections"])
print(json.dumps({"statuses": statuses, "retry_after": retry_after, "count": count}))
"""


def test_out_of_file_descriptors_is_503_and_the_lru_keeps_within_them(tmp_path) -> None:
    """60 spare descriptors: with every collection kept open (3 files each) they run out, and that is a 503 with
    Retry-After, never a 500; with at most 8 open, 60 collections all work."""
    child = run_child(FDS_CHILD, str(tmp_path / "all"), "1000")
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    seen = Counter(out["statuses"])
    assert seen[503] > 0 and out["retry_after"] == "1" and set(seen) <= {200, 201, 503}, seen
    child = run_child(FDS_CHILD, str(tmp_path / "lru"), "8")
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert set(out["statuses"]) == {200, 201} and out["count"] == 60, Counter(out["statuses"])


# -- 12. drop and re-create while others write and list


def test_drop_and_recreate_race_with_writes_and_listing(tmp_path, store, monkeypatch) -> None:
    use_store(monkeypatch, store, tmp_path)
    rounds = 40 if store == "faiss" else 12
    seen: dict[str, Counter] = {"put": Counter(), "drop": Counter(), "upsert": Counter(), "list": Counter()}
    done = threading.Event()
    monkeypatch.setattr(mirror, "SNAPSHOT_EVERY", 1)  # a snapshot after every change, racing the drops
    with reviews(tmp_path) as client:

        def dropper() -> None:
            try:
                for _ in range(rounds):
                    seen["drop"][client.delete("/collections/c", headers=KEY).status_code] += 1
                    seen["put"][client.put("/collections/c", json={"index": "hnsw"}, headers=KEY).status_code] += 1
            finally:
                done.set()

        def writer(n: int) -> None:
            i = 0
            while not done.is_set():
                body = {"items": [{"id": f"w{n}-{i}", "vector": unit_vectors(1, seed=i, dim=384)[0].tolist()}]}
                seen["upsert"][client.post("/collections/c/items", json=body, headers=KEY).status_code] += 1
                i += 1

        def lister() -> None:
            while not done.is_set():
                response = client.get("/collections")
                seen["list"][response.status_code] += 1
                assert "reviews" in [c["name"] for c in response.json()["collections"]]

        threads = [threading.Thread(target=f, args=a) for f, a in ((dropper, ()), (writer, (0,)), (writer, (1,)))]
        threads.append(threading.Thread(target=lister))
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert set(seen["list"]) == {200}, seen
        assert set(seen["upsert"]) <= {200, 404} and seen["upsert"][200] > 0, seen
        assert set(seen["drop"]) <= {204, 404} and set(seen["put"]) <= {200, 201}, seen
        assert client.get("/collections/reviews").json()["count"] == 4


# -- 19. OPTIONS


def test_options_answers_every_method_of_the_path(faiss_client) -> None:
    """A 405 to OPTIONS names in `Allow` every method the path serves (GET, PUT and DELETE), not only one."""
    for path, methods in [
        ("/collections/reviews", {"GET", "PUT", "DELETE"}),
        ("/collections", {"GET"}),
        ("/collections/reviews/items", {"POST"}),
        ("/collections/reviews/items/r1", {"GET", "DELETE"}),
        ("/collections/reviews/search", {"POST"}),
    ]:
        response = faiss_client.options(path)
        assert response.status_code == 204, path
        assert set(response.headers["Allow"].split(", ")) == methods | {"OPTIONS"}, path
    assert faiss_client.options("/nowhere").status_code == 404
    assert faiss_client.get("/collections/reviews").status_code == 200
    wrong = faiss_client.post("/collections/reviews")
    assert wrong.status_code == 405 and set(wrong.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE", "OPTIONS"}
