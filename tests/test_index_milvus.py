"""What only the Milvus engine has to show: replicas sharing one Milvus, expressions free of caller text, Milvus'
limits as named 422s, an unreachable server as 503, and answers equal to the embedded engine's."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.index.base import Item
from service.index.classify import classify
from service.index.cluster import cluster
from service.index.engines.milvus.expressions import pk_filter, tags_filter, tags_text
from service.index.engines.milvus.registry import MilvusCollections
from service.index.engines.milvus.store import MAX_TAGS, MAX_TAGS_TEXT, MAX_TOP_K, items_collection, to_row
from service.index.errors import InvalidRequest, NotFound, StoreUnavailable, Unusable
from service.index.metadata import ANY, check_filter
from tests.index_fixtures import DIM, KINDS, SMALL, close_opened, items, registry, unit_vectors
from tests.test_index_search import HOSTILE, HOSTILE_KEY

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    close_opened()


def test_replicas_share_one_milvus_and_a_restart_keeps_everything(tmp_path) -> None:
    """Two registries on one Milvus are two gateway replicas: each sees the other's writes and drops at once."""
    a, b = registry(tmp_path, store="milvus"), registry(tmp_path, store="milvus")
    on_a, _ = a.create("shared", "hnsw")
    assert b.names() == ["shared"] and b.get("shared").info()["dim"] is None
    vectors = unit_vectors(50)
    on_a.upsert(items(50), vectors)
    on_b = b.get("shared")
    assert on_b.search(vectors[7], 1)[0].id == "item-7"
    assert on_b.delete("item-7") and on_b.upsert([Item("item-8", "moved", {})], -vectors[8:9]) == 1
    assert [h.id for h in on_a.search(vectors[7], 3)] != ["item-7"]
    assert on_a.search(-vectors[8], 1)[0].text == "moved"
    before = on_a.info()
    close_opened()  # both replicas gone: the Milvus Lite server stops and the next one reads the files afresh

    again = registry(tmp_path, store="milvus").get("shared")
    assert again.info() == before == {**before, "count": 49, "dim": 16}
    ids, stored = again.vectors()
    assert len(ids) == 49 and "item-7" not in ids and ids[-1] == "item-8"
    assert np.allclose(stored[ids.index("item-3")], vectors[3], atol=1e-6)


def test_a_drop_through_one_replica_is_seen_by_the_other(tmp_path) -> None:
    a, b = registry(tmp_path, store="milvus"), registry(tmp_path, store="milvus")
    a.create("c")[0].upsert(items(3), unit_vectors(3))
    empty, _ = a.create("empty")
    stale, stale_empty = b.get("c"), b.get("empty")
    a.drop("c")
    a.drop("empty")
    for call in (lambda: b.get("c"), stale.info, lambda: stale.search(unit_vectors(1)[0], 1), stale_empty.info):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(NotFound):
        stale_empty.upsert(items(1), unit_vectors(1))
    assert b.names() == [] and empty.name == "empty"


def test_expressions_hold_no_caller_text() -> None:
    """Ids become hex and filters become integers: whatever a caller sends, an expression is made of these."""
    safe = re.compile(r'^[a-z_]+ in \[("[0-9a-f]*"(, )?)*\]$|^array_contains_all\(tags, \[(-?\d+(, )?)+\]\)$|^$')
    as_text = re.compile(r'^tags_text like "%,[0-9a-z]{1,13},%"( and tags_text like "%,[0-9a-z]{1,13},%")*$')
    for value in [*HOSTILE, "😀", "\u2028"]:
        assert safe.fullmatch(pk_filter([value, "a"])), value
        assert safe.fullmatch(tags_filter(check_filter({value: value, HOSTILE_KEY: 1.5}))), value
        assert as_text.fullmatch(tags_filter(check_filter({value: value, HOSTILE_KEY: 1.5}), as_text=True)), value
    assert safe.fullmatch(tags_filter({"label": ANY})) and tags_filter({}) == ""
    assert tags_filter(check_filter({"n": 1})) == tags_filter(check_filter({"n": 1.0})) != tags_filter({"n": '"1"'})


def test_items_collection_names_are_injective_and_valid() -> None:
    names = ["a-b", "a_db", "a__b", "a_b", "-", "_", "__", "_d", "d", "x" * 64, "A-_-Z9"]
    mapped = [items_collection(n) for n in names]
    assert len(set(mapped)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", m) for m in mapped)
    with pytest.raises(InvalidRequest):
        items_collection("../x")


def test_milvus_limits_are_refused_naming_the_field(tmp_path) -> None:
    collection, _ = registry(tmp_path, store="milvus").create("c")
    collection.upsert(items(2), unit_vectors(2))
    query = unit_vectors(1)[0]
    big_json, many_values = {"m": "x" * 70_000}, {str(i): i for i in range(3000)}
    cases = [
        (lambda: collection.upsert([Item("a", "é" * 40_000, {})], unit_vectors(1)), "items[0].text"),
        (lambda: collection.upsert([*items(1), Item("b", "", big_json)], unit_vectors(2)), "items[1].metadata"),
        (lambda: collection.upsert([Item("a", "", many_values)], unit_vectors(1)), "items[0].metadata"),
        (lambda: collection.search(query, MAX_TOP_K + 1), "top_k"),
        (lambda: classify(collection, query, "label", MAX_TOP_K + 1, 0.0), "k"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidRequest) as err:
            call()
        assert err.value.field == field
    assert collection.info()["count"] == 2


def test_an_unreachable_milvus_is_store_unavailable(tmp_path) -> None:
    with pytest.raises(StoreUnavailable) as err:
        MilvusCollections("http://127.0.0.1:9", timeout=0.5)
    assert err.value.status == 503


@pytest.mark.parametrize("kind", KINDS)
def test_both_engines_give_the_same_answers(tmp_path, kind) -> None:
    """Same writes → same hits and scores (IP on unit vectors is the cosine either way), same votes, same clusters."""
    engines = [registry(tmp_path / s, SMALL, s).create("c", kind)[0] for s in ("faiss", "milvus")]
    vectors = unit_vectors(300, seed=3)
    batch = [Item(f"i{i}", f"t{i}", {"label": f"l{i % 4}", "even": i % 2 == 0}) for i in range(300)]
    for collection in engines:
        collection.upsert(batch[:200], vectors[:200])
        collection.upsert(batch[150:], -vectors[150:])
        collection.delete("i3")
    faiss, milvus = engines
    for query in unit_vectors(5, seed=8):
        for flt in (None, {"even": True}, {"label": "l1"}):
            want, got = faiss.search(query, 10, flt), milvus.search(query, 10, flt)
            assert [h.id for h in got] == [h.id for h in want]
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
        want, got = classify(faiss, query, "label", 7, 0.0), classify(milvus, query, "label", 7, 0.0)
        assert (got.label, [h.id for h in got.neighbors]) == (want.label, [h.id for h in want.neighbors])
        assert got.confidence == pytest.approx(want.confidence, abs=1e-5)
    info = milvus.info()
    assert info == {key: faiss.info()[key] for key in info} and info["count"] == 299
    assert cluster(milvus, 5, seed=3) == cluster(faiss, 5, seed=3)


def test_without_pymilvus_the_embedded_engine_serves_and_milvus_says_what_it_needs(tmp_path) -> None:
    """pymilvus is an extra: the service imports and serves FAISS collections without it."""
    code = (
        "import sys; sys.modules['pymilvus'] = sys.modules['milvus_lite'] = None\n"
        "from service.api.app import create_app\n"
        "from service.index.registry import open_collections\n"
        "from service.settings import Settings\n"
        f"open_collections(Settings(data_dir={str(tmp_path)!r})).create('c')\n"
        "try:\n"
        f"    open_collections(Settings(data_dir={str(tmp_path)!r}, vector_store='milvus'))\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'object2vec-service[milvus]'" in done.stdout
    assert (tmp_path / "c" / "items.sqlite").is_file()


def test_tags_text_holds_whole_tags_in_base_36() -> None:
    tags = [0, -1, 2**63 - 1, -(2**63), 35, 36]
    assert tags_text(tags) == ",0,3w5e11264sgsf,1y2p0ij32e8e7,1y2p0ij32e8e8,z,10,"
    assert len(tags_text([-1] * MAX_TAGS)) == MAX_TAGS_TEXT


def test_a_lite_collection_without_tags_text_is_refused_until_migrated(tmp_path, capsys) -> None:
    """Its items collection made without tags_text (filters cannot run on it): a 409 naming `o2v index migrate`,
    which copies the items into the current layout, vectors kept; then it answers as one made so does."""
    reg = registry(tmp_path, SMALL, "milvus")
    made, _ = reg.create("made", "hnsw")
    bare, _ = reg.create("bare", "hnsw")
    types = reg.connection.pymilvus.DataType
    schema = reg.client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", types.VARCHAR, is_primary=True, max_length=2048)
    schema.add_field("id", types.VARCHAR, max_length=1024)
    schema.add_field("text", types.VARCHAR, max_length=65_535)
    schema.add_field("metadata", types.JSON)
    schema.add_field("tags", types.ARRAY, element_type=types.INT64, max_capacity=4096)
    schema.add_field("seq", types.INT64)
    schema.add_field("vector", types.FLOAT_VECTOR, dim=DIM)
    reg.connection.create(bare.target, schema, "HNSW", {"M": 16, "efConstruction": 64})
    vectors = unit_vectors(200, seed=5)
    rows = [{**to_row(item, "items", DIM), "seq": i, "vector": vectors[i]} for i, item in enumerate(items(200))]
    reg.client.upsert(bare.target, [{k: v for k, v in row.items() if k != "bytes"} for row in rows])
    reg.catalog.write("bare", bare.config.public(), DIM)
    made.upsert(items(200), vectors)
    with pytest.raises(Unusable, match="o2v index migrate bare"):
        reg.get("bare").search(vectors[0], 10, {"parity": 0})
    assert reg.migrate("made") == []
    assert reg.migrate("bare") == ["tags kept as text (200 items copied)"]
    assert reg.migrate("bare") == []
    migrated = reg.get("bare")
    assert migrated.count_where() == 200 and np.allclose(migrated.vectors()[1], made.vectors()[1])
    for query in unit_vectors(5, seed=6):
        for flt in ({"parity": 0}, {"i": 8}, {"i": 4}, {"parity": 1, "i": 9}):
            assert [h.id for h in migrated.search(query, 10, flt)] == [h.id for h in made.search(query, 10, flt)]
    assert [i.id for i in migrated.page(None, 5, {"parity": 1})[0]] == [
        i.id for i in made.page(None, 5, {"parity": 1})[0]
    ]
