"""Upsert, replace, delete and search on every index kind of both engines, against brute force over the same vectors;
filters and ids that look like expression syntax are only ever literal values."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from service.index.engines.faiss.store import Item
from service.index.errors import InvalidRequest
from tests.index_fixtures import DIM, KINDS, SMALL, exact_ids, items, registry, unit_vectors


@pytest.fixture(params=KINDS)
def filled(request, tmp_path, store):
    """A collection of 200 items (IVF is trained at this size) and its vectors."""
    collection, _ = registry(tmp_path, store=store).create("c", request.param)
    vectors = unit_vectors(200)
    collection.upsert(items(200), vectors)
    return collection, vectors


def test_search_matches_brute_force(filled) -> None:
    collection, vectors = filled
    ids = [f"item-{i}" for i in range(200)]
    for query in unit_vectors(5, seed=1):
        hits = collection.search(query, 10)
        assert [h.id for h in hits] == exact_ids(vectors, ids, query, 10)
        assert hits[0].score == pytest.approx(float(vectors[int(hits[0].id[5:])] @ query), abs=1e-5)
    assert collection.search(vectors[7], 1)[0].text == "text 7"


def test_ivf_trains_only_once_enough_vectors(tmp_path) -> None:
    collection, _ = registry(tmp_path).create("c", "ivf")
    collection.upsert(items(100), unit_vectors(100))
    assert collection.info()["trained"] is False
    collection.upsert(items(50, start=100), unit_vectors(50, seed=2))
    assert collection.info()["trained"] is True
    assert collection.search(unit_vectors(150)[3], 1)[0].id == "item-3"


def test_replace_leaves_no_stale_hit(filled) -> None:
    collection, vectors = filled
    collection.upsert([Item("item-3", "moved", {"new": True})], -vectors[3:4])
    assert all(h.id != "item-3" for h in collection.search(vectors[3], 20))
    hit = collection.search(-vectors[3], 1)[0]
    assert (hit.id, hit.text, hit.metadata) == ("item-3", "moved", {"new": True})
    assert collection.info()["count"] == 200


def test_delete_removes_and_reports_missing(filled) -> None:
    collection, vectors = filled
    assert collection.delete("item-5") is True
    assert collection.delete("item-5") is False
    assert all(h.id != "item-5" for h in collection.search(vectors[5], 200))
    assert len(collection.search(vectors[5], 500)) == 199


def test_hnsw_tombstones_are_excluded_then_rebuilt(tmp_path) -> None:
    config = replace(SMALL, rebuild_deleted_share=0.3)
    collection, _ = registry(tmp_path, config).create("c", "hnsw")
    vectors = unit_vectors(100)
    collection.upsert(items(100), vectors)
    for i in range(20):
        collection.delete(f"item-{i}")
    assert collection.info()["deleted"] == 20
    ids = [f"item-{i}" for i in range(20, 100)]
    assert [h.id for h in collection.search(vectors[0], 10)] == exact_ids(vectors[20:], ids, vectors[0], 10)
    for i in range(20, 30):
        collection.delete(f"item-{i}")
    assert collection.info()["deleted"] == 0, "30 of 100 dead passes the 0.3 share: the graph is rebuilt"
    assert len(collection.search(vectors[0], 100)) == 70


def test_repeated_id_in_one_batch_keeps_the_last(tmp_path, store) -> None:
    collection, _ = registry(tmp_path, store=store).create("c")
    vectors = unit_vectors(2)
    collection.upsert([Item("a", "first", {}), Item("a", "second", {})], vectors)
    hits = collection.search(vectors[1], 5)
    assert [(h.id, h.text) for h in hits] == [("a", "second")]


@pytest.mark.parametrize("kind", KINDS)
def test_filter_is_exact_for_rare_and_common_values(tmp_path, kind, store) -> None:
    collection, _ = registry(tmp_path, store=store, filter_exact_max=5).create("c", kind)
    vectors = unit_vectors(200)
    batch = [
        Item(f"item-{i}", "", {"parity": i % 2, "rare": i in (17, 150), "tag": "x" if i < 3 else None})
        for i in range(200)
    ]
    collection.upsert(batch, vectors)
    ids = [f"item-{i}" for i in range(200)]
    query = unit_vectors(1, seed=9)[0]
    rare = collection.search(query, 10, {"rare": True})
    assert sorted(h.id for h in rare) == ["item-150", "item-17"]
    even = [h.id for h in collection.search(query, 10, {"parity": 0})]
    assert even == exact_ids(vectors[::2], ids[::2], query, 10)
    assert [h.id for h in collection.search(query, 3, {"parity": 1.0, "tag": None})] == exact_ids(
        vectors[3::2], ids[3::2], query, 3
    )
    assert collection.search(query, 5, {"parity": "0"}) == []
    assert collection.search(query, 5, {"missing": 1}) == []


def test_bad_requests_name_their_field(tmp_path, store) -> None:
    collection, _ = registry(tmp_path, store=store).create("c")
    collection.upsert(items(3), unit_vectors(3))
    cases = [
        (lambda: collection.search(np.ones(DIM + 1), 3), "vector"),
        (lambda: collection.search(np.zeros(DIM), 3), "vector"),
        (lambda: collection.search(np.ones(DIM), 0), "top_k"),
        (lambda: collection.search(np.ones(DIM), 3, {"k": [1]}), "filter.k"),
        (lambda: collection.upsert(items(1), unit_vectors(1, dim=DIM + 2)), "items.vector"),
        (lambda: collection.upsert(items(2), np.zeros((2, DIM))), "items[0].vector"),
        (lambda: collection.upsert([Item("", "t", {})], unit_vectors(1)), "items[0].id"),
        (lambda: collection.upsert([Item("x", "t", {"v": float("nan")})], unit_vectors(1)), "items[0].metadata"),
        (lambda: collection.upsert(items(2), unit_vectors(1)), "items"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidRequest) as err:
            call()
        assert err.value.field == field
    assert collection.info()["count"] == 3


def test_empty_collection_answers_empty(tmp_path, store) -> None:
    collection, _ = registry(tmp_path, store=store).create("c", "hnsw")
    assert collection.search(np.ones(DIM), 5) == []
    assert collection.info() == {**collection.info(), "count": 0, "dim": None}


HOSTILE = [
    'x" or 1==1 or "',
    "') or true or ('",
    "back\\slash\\",
    '\\"',
    "new\nline",
    "]) or array_contains(tags, 1",
    "1",
    "",
]
HOSTILE_KEY = 'a"] or true or meta["b'


def test_filter_values_and_keys_that_look_like_expressions_are_literal(tmp_path, store) -> None:
    collection, _ = registry(tmp_path, store=store).create("c")
    batch = [Item(f"plain-{i}", "", {"k": "plain", HOSTILE_KEY: "plain", "b": 1}) for i in range(5)]
    batch += [Item(f"h{j}", value, {"k": value, HOSTILE_KEY: value}) for j, value in enumerate(HOSTILE)]
    collection.upsert(batch, unit_vectors(len(batch)))
    query = unit_vectors(1, seed=4)[0]
    for j, value in enumerate(HOSTILE):
        for key in ("k", HOSTILE_KEY):
            assert [h.id for h in collection.search(query, 50, {key: value})] == [f"h{j}"], (key, value)
    assert collection.search(query, 50, {'k"] or true or meta["k': "plain"}) == []
    assert collection.search(query, 50, {"b": 'x" or 1==1 or "'}) == []
    assert collection.search(query, 50, {"k": "1"})[0].metadata == {"k": "1", HOSTILE_KEY: "1"}


def test_ids_that_look_like_expressions_are_literal(tmp_path, store) -> None:
    collection, _ = registry(tmp_path, store=store).create("c")
    ids = ["a", "b", "a','b", 'a","b', "a\\", "x' or true or 'y"]
    collection.upsert([Item(i, i, {}) for i in ids], unit_vectors(len(ids)))
    assert [item.text for item in collection.items(ids)] == ids  # type: ignore[union-attr]
    assert collection.items(["a', 'b", 'a", "b', "' or true or '"]) == [None, None, None]
    assert collection.delete("a', 'b") is False and collection.delete('a", "b') is False
    assert collection.delete("x' or true or 'y") is True
    assert collection.delete("a','b") is True
    assert sorted(i.id for i in collection.items(ids) if i is not None) == sorted(["a", "b", 'a","b', "a\\"])
    assert collection.info()["count"] == 4
