"""Keyed and paged reads (get, batch get, scroll, count, batch search) and model pinning, through the real app on
each engine (`store`: FAISS + SQLite and Milvus Lite)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.encoders.sagemaker import SageMakerEncoder
from service.index.base import Item
from service.index.fingerprint import model_fingerprint
from service.model.model_dir import ModelDir
from service.settings import DEFAULT_MODEL_DIR, Settings
from tests.gateway_fixtures import onnx_encoder
from tests.index_fixtures import use_store
from tests.test_collections_api import API_KEY, KEY, REVIEWS, error_field

SERVED = model_fingerprint(onnx_encoder())
OTHER = "another-model@0123456789abcdef"


@pytest.fixture
def client(tmp_path, store, monkeypatch) -> Iterator[TestClient]:
    use_store(monkeypatch, store, tmp_path)
    limits = {"max_get_ids": 3, "max_scroll_limit": 2, "max_search_batch": 2, "max_top_k": 20}
    with TestClient(create_app(Settings(data_dir=tmp_path, api_key=API_KEY, **limits), onnx_encoder())) as client:
        assert client.put("/collections/reviews", headers=KEY).status_code == 201
        items = [{"id": i, "text": t, "metadata": m} for i, t, m in REVIEWS]
        assert client.post("/collections/reviews/items", json={"items": items}, headers=KEY).status_code == 200
        yield client


def test_the_fingerprint_names_the_model_and_its_encoder_hash() -> None:
    model = ModelDir.load(DEFAULT_MODEL_DIR)
    assert f"{model.name}@{model.card['files']['encoder.onnx'][:16]}" == SERVED
    assert model_fingerprint(SageMakerEncoder(model, "o2v-prod", client=None)) == "sagemaker:o2v-prod"


def test_get_one_item_with_and_without_its_vector(client) -> None:
    item = client.get("/collections/reviews/items/r2").json()
    assert item == {"id": "r2", "text": REVIEWS[1][1], "metadata": REVIEWS[1][2], "vector_source": "model"}
    vector = client.get("/collections/reviews/items/r2", params={"with_vector": "true"}).json()["vector"]
    embedded = client.post("/embed", json={"texts": [REVIEWS[1][1]]}).json()["embeddings"][0]
    assert np.allclose(vector, embedded, atol=1e-5)
    missing = client.get("/collections/reviews/items/nope")
    assert (missing.status_code, error_field(missing)) == (404, "item_id")
    assert client.get("/collections/nope/items/r1").status_code == 404


def test_batch_get_keeps_the_order_and_names_the_missing(client) -> None:
    answer = client.post("/collections/reviews/get", json={"ids": ["r3", "x", "r1"]}).json()
    assert [i["id"] for i in answer["items"]] == ["r3", "r1"] and answer["missing"] == ["x"]
    too_many = client.post("/collections/reviews/get", json={"ids": ["a", "b", "c", "d"]})
    assert (too_many.status_code, error_field(too_many)) == (422, "ids")


def test_scroll_pages_every_item_once_in_id_order(client) -> None:
    extra = [{"id": i, "vector": np.eye(384)[n].tolist(), "metadata": {"label": "pos"}} for n, i in enumerate("äbz")]
    assert client.post("/collections/reviews/items", json={"items": extra}, headers=KEY).status_code == 200
    seen, cursor = [], None
    while True:
        body = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.post("/collections/reviews/scroll", json=body).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(["r1", "r2", "r3", "r4", "ä", "b", "z"], key=lambda i: i.encode())
    pos = client.post("/collections/reviews/scroll", json={"limit": 2, "filter": {"label": "pos"}}).json()
    assert [i["id"] for i in pos["items"]] == ["b", "r1"]
    assert pos["items"][0]["vector_source"] == "caller"
    for body, field in [({"limit": 3}, "limit"), ({"cursor": "zz"}, "cursor"), ({"filter": {"a": [1]}}, "filter.a")]:
        response = client.post("/collections/reviews/scroll", json=body)
        assert (response.status_code, error_field(response)) == (422, field), body


def test_count_with_and_without_a_filter(client) -> None:
    assert client.post("/collections/reviews/count").json() == {"count": 4}
    assert client.post("/collections/reviews/count", json={"filter": {"label": "neg"}}).json() == {"count": 2}
    assert client.post("/collections/reviews/count", json={"filter": {"label": "neg", "source": "imdb"}}).json() == {
        "count": 1
    }


def test_batch_search_answers_each_query(client) -> None:
    vector = client.post("/embed", json={"texts": [REVIEWS[2][1]]}).json()["embeddings"][0]
    queries = [{"query": REVIEWS[1][1], "top_k": 1}, {"vector": vector, "top_k": 2, "filter": {"label": "pos"}}]
    results = client.post("/collections/reviews/search/batch", json={"queries": queries}).json()["results"]
    assert [[h["id"] for h in r["hits"]] for r in results] == [["r2"], ["r3", "r1"]]
    for body, field in [
        ({"queries": [{"query": "x"}] * 3}, "queries"),
        ({"queries": [{"query": "x"}, {}]}, "queries[1].query"),
        ({"queries": [{"query": "x"}, {"vector": [1.0, 2.0]}]}, "queries[1].vector"),
        ({"queries": [{"query": "x", "top_k": 21}]}, "queries[0].top_k"),
        ({"queries": [{"query": "x", "top_k": 15}, {"query": "y", "top_k": 6}]}, "queries"),
    ]:
        response = client.post("/collections/reviews/search/batch", json=body)
        assert (response.status_code, error_field(response)) == (422, field), body


def test_a_collection_of_another_model_refuses_texts_and_takes_vectors(client) -> None:
    assert client.get("/collections/reviews").json()["model"] == SERVED
    assert client.put("/collections/old", headers=KEY).status_code == 201
    registry = client.app.state.services.collections
    registry.get("old").upsert([Item("a", "embedded elsewhere", {"label": "x"})], np.eye(384)[:1], model=OTHER)
    assert client.get("/collections/old").json()["model"] == OTHER
    vector = np.eye(384)[1].tolist()
    for route, body in [
        ("items", {"items": [{"id": "b", "text": "a text"}]}),
        ("search", {"query": "a text"}),
        ("classify", {"text": "a text"}),
        ("search/batch", {"queries": [{"vector": vector}, {"query": "a text"}]}),
    ]:
        response = client.post(f"/collections/old/{route}", json=body, headers=KEY)
        assert response.status_code == 409 and error_field(response) == "model", route
        assert OTHER in response.json()["error"]["message"] and SERVED in response.json()["error"]["message"]
    assert client.post(
        "/collections/old/items", json={"items": [{"id": "b", "vector": vector}]}, headers=KEY
    ).is_success
    assert client.post("/collections/old/search", json={"vector": vector}).json()["hits"][0]["id"] == "b"


def test_a_collection_without_a_model_adopts_the_served_one_on_its_first_text_write(client) -> None:
    assert client.put("/collections/legacy", headers=KEY).status_code == 201
    vector = {"items": [{"id": "v", "vector": np.eye(384)[0].tolist()}]}
    assert client.post("/collections/legacy/items", json=vector, headers=KEY).is_success
    assert client.get("/collections/legacy").json()["model"] is None
    assert client.post("/collections/legacy/search", json={"query": "anything"}).is_success
    assert client.post(
        "/collections/legacy/items", json={"items": [{"id": "t", "text": "a text"}]}, headers=KEY
    ).is_success
    assert client.get("/collections/legacy").json()["model"] == SERVED
