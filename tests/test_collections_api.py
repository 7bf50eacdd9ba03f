"""The collection routes through the real app, the bundled ONNX model and real collections on disk, with each engine
(`O2V_VECTOR_STORE=faiss`, and `milvus` on a Milvus Lite file in the data directory or on the test run's server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.gateway_fixtures import onnx_encoder, reported_scores
from tests.index_fixtures import use_store

API_KEY = "collections-test-key-4e1b"
KEY = {"Authorization": f"Bearer {API_KEY}"}
REVIEWS = [
    ("r1", "The food was great and the staff friendly.", {"label": "pos", "source": "yelp"}),
    ("r2", "Terrible service, we waited an hour.", {"label": "neg", "source": "yelp"}),
    ("r3", "This phone's battery lasts all day.", {"label": "pos", "source": "amazon"}),
    ("r4", "The plot made no sense at all.", {"label": "neg", "source": "imdb"}),
]


def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, api_key=API_KEY, max_batch_size=4, max_top_k=20, max_clusters=3)


@contextmanager
def reviews_app(data_dir: Path) -> Iterator[TestClient]:
    """The app with a flat collection "reviews" of the four REVIEWS, around the session's encoder."""
    with TestClient(create_app(settings(data_dir), onnx_encoder())) as client:
        assert client.put("/collections/reviews", headers=KEY).status_code == 201
        items = [{"id": i, "text": t, "metadata": m} for i, t, m in REVIEWS]
        assert client.post("/collections/reviews/items", json={"items": items}, headers=KEY).json() == {"upserted": 4}
        yield client


@pytest.fixture
def client(tmp_path, store, monkeypatch) -> Iterator[TestClient]:
    use_store(monkeypatch, store, tmp_path)
    with reviews_app(tmp_path) as client:
        yield client


def error_field(response) -> str:
    return response.json()["error"]["field"]


def test_write_routes_need_the_key(client) -> None:
    assert client.put("/collections/x").status_code == 401
    assert client.post("/collections/reviews/items", json={"items": [{"id": "a", "text": "b"}]}).status_code == 401
    assert client.delete("/collections/reviews/items/r1").status_code == 401
    assert client.delete("/collections/reviews").status_code == 401
    assert client.post("/collections/reviews/search", json={"query": "food"}).status_code == 200


def test_create_is_idempotent_and_conflicts_are_409(client) -> None:
    info = client.put("/collections/reviews", headers=KEY)
    assert info.status_code == 200
    assert {k: v for k, v in info.json().items() if k != "model"} == {
        "name": "reviews",
        "count": 4,
        "dim": 384,
        "index": "flat",
    }
    conflict = client.put("/collections/reviews", json={"index": "hnsw"}, headers=KEY)
    assert (conflict.status_code, error_field(conflict)) == (409, "index")
    created = client.put("/collections/g", json={"index": "hnsw", "m": 8, "ef_search": 40}, headers=KEY)
    assert created.status_code == 201 and created.json()["m"] == 8
    cases = [({"index": "annoy"}, "index"), ({"m": 0}, "m"), ({"nlist": 8}, "nlist"), ({"x": 1}, "x")]
    cases += [({"index": "ivf", "nprobe": 2**70}, "nprobe"), ({"index": "hnsw", "m": 257}, "m")]  # past the bounds
    for body, field in cases:
        response = client.put("/collections/h", json=body, headers=KEY)
        assert (response.status_code, error_field(response)) == (422, field), body
    bad = client.put("/collections/bad.name", headers=KEY)
    assert (bad.status_code, error_field(bad)) == (422, "name")
    assert [c["name"] for c in client.get("/collections").json()["collections"]] == ["g", "reviews"]


def test_search_by_text_vector_and_filter(client) -> None:
    hits = client.post("/collections/reviews/search", json={"query": REVIEWS[1][1], "top_k": 2}).json()["hits"]
    assert hits[0]["id"] == "r2" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert hits[0]["text"] == REVIEWS[1][1] and hits[0]["metadata"] == REVIEWS[1][2]
    vector = client.post("/embed", json={"texts": [REVIEWS[2][1]]}).json()["embeddings"][0]
    assert (
        client.post("/collections/reviews/search", json={"vector": vector, "top_k": 1}).json()["hits"][0]["id"] == "r3"
    )
    body = {"query": REVIEWS[1][1], "filter": {"source": "yelp", "label": "pos"}}
    assert [h["id"] for h in client.post("/collections/reviews/search", json=body).json()["hits"]] == ["r1"]


def test_search_limits_name_the_field(client) -> None:
    for body, field in [
        ({"query": "x", "top_k": 21}, "top_k"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "vector": [1.0]}, "query"),
        ({}, "query"),
        ({"vector": [1.0, 2.0]}, "vector"),
        ({"query": ""}, "query"),
        ({"query": "x", "filter": {"label": ["pos"]}}, "filter.label"),
    ]:
        response = client.post("/collections/reviews/search", json=body)
        assert (response.status_code, error_field(response)) == (422, field), body
    missing = client.post("/collections/nope/search", json={"query": "x"})
    assert (missing.status_code, error_field(missing)) == (404, "name")


def test_upsert_limits_and_precomputed_vectors(client) -> None:
    too_many = {"items": [{"id": str(i), "text": "t"} for i in range(5)]}
    response = client.post("/collections/reviews/items", json=too_many, headers=KEY)
    assert (response.status_code, error_field(response)) == (422, "items")
    for items, field in [
        ([{"id": "v", "vector": [1.0, 0.0]}], "items.vector"),
        ([{"id": "v", "text": "a"}, {"id": "w", "vector": [1.0] * 10}], "items[1].vector"),
        ([{"id": "v"}], "items[0].text"),
        ([{"id": "", "text": "a"}], "items[0].id"),
        ([{"id": "v", "vector": [0.0] * 384}], "items[0].vector"),
    ]:
        response = client.post("/collections/reviews/items", json={"items": items}, headers=KEY)
        assert (response.status_code, error_field(response)) == (422, field), items
    vector = [0.0] * 384
    vector[7] = 2.0
    upserted = client.post("/collections/reviews/items", json={"items": [{"id": "v", "vector": vector}]}, headers=KEY)
    assert upserted.json() == {"upserted": 1}
    hit = client.post("/collections/reviews/search", json={"vector": vector, "top_k": 1}).json()["hits"][0]
    assert (hit["id"], hit["text"], hit["score"]) == ("v", "", pytest.approx(1.0))


def test_replace_and_delete_item(client) -> None:
    replaced = {"items": [{"id": "r1", "text": "A completely different sentence.", "metadata": {"v": 2}}]}
    client.post("/collections/reviews/items", json=replaced, headers=KEY)
    hits = client.post("/collections/reviews/search", json={"query": REVIEWS[0][1], "top_k": 10}).json()["hits"]
    assert [h["text"] for h in hits if h["id"] == "r1"] == ["A completely different sentence."]
    assert client.delete("/collections/reviews/items/r1", headers=KEY).status_code == 204
    gone = client.delete("/collections/reviews/items/r1", headers=KEY)
    assert (gone.status_code, error_field(gone)) == (404, "item_id")
    hits = client.post("/collections/reviews/search", json={"query": REVIEWS[0][1], "top_k": 10}).json()["hits"]
    assert "r1" not in {h["id"] for h in hits}
    assert client.get("/collections/reviews").json()["count"] == 3


def test_classify_in_and_out_of_scope(client) -> None:
    answer = client.post("/collections/reviews/classify", json={"text": REVIEWS[3][1], "k": 1}).json()
    assert answer["label"] == "neg" and answer["confidence"] == pytest.approx(1.0, abs=1e-5)
    assert answer["neighbors"][0]["id"] == "r4"
    unsure = client.post("/collections/reviews/classify", json={"text": "quantum flux capacitor", "min_score": 0.999})
    assert unsure.json()["label"] is None
    by_source = client.post(
        "/collections/reviews/classify", json={"text": REVIEWS[2][1], "label_key": "source", "k": 1}
    )
    assert by_source.json()["label"] == "amazon"
    response = client.post("/collections/reviews/classify", json={"text": "x", "k": 21})
    assert (response.status_code, error_field(response)) == (422, "k")


def test_cluster_is_repeatable(client) -> None:
    first = client.post("/collections/reviews/cluster", json={"k": 2, "seed": 3}).json()
    assert first == client.post("/collections/reviews/cluster", json={"k": 2, "seed": 3}).json()
    assert sorted(first["assignments"]) == ["r1", "r2", "r3", "r4"]
    assert sum(c["size"] for c in first["clusters"]) == 4
    assert all(set(r) == {"id", "text"} for c in first["clusters"] for r in c["representatives"])
    for k in (4, 5):
        response = client.post("/collections/reviews/cluster", json={"k": k})
        assert (response.status_code, error_field(response)) == (422, "k")


def test_search_and_classify_scores_reach_the_drift_streams(client) -> None:
    with reported_scores(client.app) as seen:
        client.post("/collections/reviews/search", json={"query": REVIEWS[0][1]})
        client.post("/collections/reviews/classify", json={"text": REVIEWS[0][1], "k": 1})
    assert [s for s, _ in seen] == ["search_top1", "classify_confidence"]
    assert seen[0][1] == [pytest.approx(1.0, abs=1e-5)]


def test_drop_and_restart(tmp_path, store, monkeypatch) -> None:
    use_store(monkeypatch, store, tmp_path)
    with reviews_app(tmp_path) as client:
        client.put("/collections/gone", headers=KEY)
        assert client.delete("/collections/gone", headers=KEY).status_code == 204
        assert client.get("/collections/gone").status_code == 404
        assert client.delete("/collections/gone", headers=KEY).status_code == 404
    assert store != "faiss" or (tmp_path / "reviews" / "index.npz").exists(), "shutdown snapshots the index"
    with TestClient(create_app(settings(tmp_path), onnx_encoder())) as again:
        assert again.get("/collections/reviews").json()["count"] == 4
        assert again.post("/collections/reviews/search", json={"query": REVIEWS[0][1]}).json()["hits"][0]["id"] == "r1"
