"""Search-time parameters (efSearch, nprobe) on the collection interface, on both engines: named per index kind,
checked by field, used by the next search, and never stored."""

from __future__ import annotations

import numpy as np
import pytest

from service.index.engines.faiss.registry import FaissCollections
from service.index.errors import InvalidRequest
from tests.index_fixtures import SMALL, exact_ids, items, registry, unit_vectors

EXPECTED = {"flat": {}, "hnsw": {"ef_search": SMALL.ef_search}, "ivf": {"nprobe": SMALL.nprobe}}


@pytest.mark.parametrize("kind", EXPECTED)
def test_each_kind_names_its_search_parameters(tmp_path, store, kind) -> None:
    collection, _ = registry(tmp_path, store=store).create("c", kind)
    assert collection.search_params() == EXPECTED[kind]
    for key in ("m", "nlist", "min_train", *({"ef_search", "nprobe"} - set(EXPECTED[kind]))):
        with pytest.raises(InvalidRequest) as refused:
            collection.set_search_params(**{key: 8})
        assert refused.value.field == key


def test_a_changed_parameter_is_used_and_shown_but_not_stored(tmp_path, store) -> None:
    collections = registry(tmp_path, store=store)
    collection, _ = collections.create("c", "hnsw")
    for bad in (0, 32_769, True, "64"):
        with pytest.raises(InvalidRequest) as refused:
            collection.set_search_params(ef_search=bad)
        assert refused.value.field == "ef_search"
    collection.set_search_params(ef_search=64)
    assert collection.search_params() == {"ef_search": 64}
    collection.upsert(items(30), unit_vectors(30))  # the first write records the dimension in Milvus' catalog
    collection.set_attributes({"min_score": 0.5})  # and an attribute write rewrites it
    assert collection.info()["ef_search"] == 64
    fresh = registry(tmp_path, store=store).get("c")  # another registry on the same data: what is stored
    assert fresh.search_params() == {"ef_search": SMALL.ef_search}
    assert fresh.info()["ef_search"] == SMALL.ef_search


def test_the_embedded_engine_searches_with_it_also_after_an_eviction(tmp_path) -> None:
    """IVF over 4 lists: probing all of them is exact, probing one misses neighbours in other lists; the index that
    is already built follows the change, and so does the one an evicted collection reopens with."""
    collections = FaissCollections(tmp_path, SMALL, max_open=1)
    collection, _ = collections.create("c", "ivf")
    vectors = unit_vectors(400)
    collection.upsert(items(400), vectors)
    assert collection.info()["trained"] is True
    ids = [f"item-{i}" for i in range(400)]
    queries = unit_vectors(20, seed=5)

    def recall() -> float:
        found = [{h.id for h in collection.search(q, 10)} & set(exact_ids(vectors, ids, q, 10)) for q in queries]
        return float(np.mean([len(f) / 10 for f in found]))

    assert recall() == 1.0
    collection.set_search_params(nprobe=1)
    probed_one = recall()
    assert probed_one < 0.9
    collections.create("other", "flat")  # max_open=1: "c" is evicted and reopens at its next call
    assert not collection.is_open
    assert recall() == probed_one and collection.search_params() == {"nprobe": 1}
    collection.set_search_params(nprobe=SMALL.nprobe)
    assert recall() == 1.0
    collections.close()
