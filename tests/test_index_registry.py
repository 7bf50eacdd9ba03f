"""Collection names, idempotent create, conflicts, list and drop, on both engines."""

from __future__ import annotations

import pytest

from service.index.errors import Conflict, InvalidRequest, NotFound
from service.index.names import collection_dir
from tests.index_fixtures import items, registry, unit_vectors

BAD_NAMES = ["", ".", "..", "../up", "a/b", "a\\b", "sp ace", "dot.ted", "x" * 65, "nul\x00", "é", "/abs"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_before_touching_disk(tmp_path, name, store) -> None:
    collections = registry(tmp_path / "data", store=store)
    for call in (lambda: collections.create(name), lambda: collections.get(name), lambda: collections.drop(name)):
        with pytest.raises(InvalidRequest) as err:
            call()
        assert err.value.field == "name"
    assert collections.names() == []
    assert store != "faiss" or not (tmp_path / "data").exists()


def test_good_names_stay_inside_the_data_dir(tmp_path) -> None:
    for name in ("a", "A-b_9", "x" * 64, "-", "__"):
        assert collection_dir(tmp_path, name).parent == tmp_path.resolve()


def test_create_is_idempotent_and_conflicts_name_the_field(tmp_path, store) -> None:
    collections = registry(tmp_path, store=store)
    first, created = collections.create("c", "hnsw", {"m": 8})
    assert created and first.info()["m"] == 8
    for again in ({}, {"m": 8}):
        same, created = collections.create("c", "hnsw", again)
        assert same.info() == first.info() and not created
    assert collections.create("c")[1] is False
    with pytest.raises(Conflict) as err:
        collections.create("c", "flat")
    assert err.value.field == "index"
    with pytest.raises(Conflict) as err:
        collections.create("c", "hnsw", {"m": 16})
    assert err.value.field == "m"


def test_unknown_or_bad_params_are_refused(tmp_path, store) -> None:
    collections = registry(tmp_path, store=store)
    cases = [("annoy", {}, "index"), ("flat", {"m": 8}, "m"), ("ivf", {"nlist": 0}, "nlist")]
    cases += [("ivf", {"nprobe": 2**70}, "nprobe"), ("hnsw", {"ef_search": 32_769}, "ef_search")]
    for index, params, field in cases:
        with pytest.raises(InvalidRequest) as err:
            collections.create("c", index, params)
        assert err.value.field == field
    assert collections.names() == []


def test_list_get_drop(tmp_path, store) -> None:
    collections = registry(tmp_path, store=store)
    for name in ("b", "a"):
        collections.create(name)[0].upsert(items(2), unit_vectors(2))
    (tmp_path / "not-a-collection").mkdir()
    assert collections.names() == ["a", "b"]
    collections.drop("a")
    assert collections.names() == ["b"]
    with pytest.raises(NotFound):
        collections.get("a")
    with pytest.raises(NotFound):
        collections.drop("a")
    again, created = collections.create("a")
    assert created and again.info()["count"] == 0


def test_a_dropped_collection_object_refuses_use(tmp_path, store) -> None:
    collections = registry(tmp_path, store=store)
    collection, _ = collections.create("c")
    collections.drop("c")
    with pytest.raises(NotFound):
        collection.info()
