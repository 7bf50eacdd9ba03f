"""The items of one collection in Milvus (`o2v_items_<name>`): the schema, an item as a row and back, and the
index each kind maps to.

A row: pk (hex of the UTF-8 id), id, text, metadata (JSON), tags (ARRAY<INT64>), seq (write order, so k-means reads
items in the order the embedded engine does and gives the same clusters) and vector (FLOAT_VECTOR of unit
vectors, metric IP: the score is the cosine, as FAISS's is). Filters are conditions on the tags, indexed: on a
server an INVERTED index on `tags` (2.4 and later; 2.3 evaluates `array_contains_all` without one), on Milvus Lite
the tags again as text (`tags_text`, matched by a vectorised LIKE). Flat is FLAT, hnsw is HNSW (M,
efConstruction; ef = max(ef_search, top_k) per search, OVERFETCH × top_k when filtered), ivf is IVF_FLAT (nlist;
nprobe per search), hnsw_sq8 is HNSW_SQ with SQ8 codes and ivf_pq is IVF_PQ (8-bit parts; a Milvus server only,
Lite has none); Milvus answers both from their codes (rerank is FAISS's alone).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from service.index.base import MAX_ID_CHARS, Item
from service.index.config import IndexConfig, Kind, pq_parts
from service.index.engines.milvus.connection import Connection
from service.index.engines.milvus.expressions import GIVEN, item_tags, pk
from service.index.errors import InvalidRequest, Unusable
from service.index.names import check_name

ITEMS_PREFIX = "o2v_items_"
MAX_TOP_K = 16_384
"""Milvus' limit on topk (and on offset + limit of a query)."""
MAX_TEXT_BYTES = 65_535
"""VARCHAR's largest max_length."""
MAX_METADATA_BYTES = 65_536
"""Milvus' limit on one JSON value."""
MAX_TAGS = 4_096
"""ARRAY's largest max_capacity: a tag per scalar metadata value and one per key."""
MAX_TAGS_TEXT = 1 + 14 * MAX_TAGS
"""`tags_text` of MAX_TAGS tags: 13 base-36 digits and a comma each."""
MAX_BATCH_BYTES = 16 * 2**20
"""Rows per upsert call are cut to stay well under Milvus' 64 MiB gRPC message."""
INDEXES: dict[Kind, str] = {
    "flat": "FLAT",
    "hnsw": "HNSW",
    "ivf": "IVF_FLAT",
    "hnsw_sq8": "HNSW_SQ",
    "ivf_pq": "IVF_PQ",
}
NOT_ON_LITE: tuple[Kind, ...] = ("ivf_pq",)
OVERFETCH = 20
"""A filtered HNSW search widens its beam to this many times top_k: the neighbours the embedded engine looks
among for a filter matching 1 item in 10."""
FIELDS = ["pk", "id", "text", "metadata", "tags"]
"""The fields an item is read back from (its vector besides, when asked for)."""


def items_collection(name: str) -> str:
    """The Milvus name of a collection's items; injective (`_` → `__`, `-` → `_d`) as Milvus names allow no `-`."""
    return ITEMS_PREFIX + check_name(name).replace("_", "__").replace("-", "_d")


def create_items(connection: Connection, target: str, dim: int, config: IndexConfig) -> None:
    """The items' collection `target`: a row per item, the vector of `dim` numbers, indexed as `config` says; the
    tags indexed for filters (INVERTED on a server that can, as text on Lite)."""
    types = connection.pymilvus.DataType
    schema = connection.client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", types.VARCHAR, is_primary=True, max_length=2 * 4 * MAX_ID_CHARS)  # hex of UTF-8
    schema.add_field("id", types.VARCHAR, max_length=4 * MAX_ID_CHARS)
    schema.add_field("text", types.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("metadata", types.JSON)
    schema.add_field("tags", types.ARRAY, element_type=types.INT64, max_capacity=MAX_TAGS)
    if connection.lite:
        schema.add_field("tags_text", types.VARCHAR, max_length=MAX_TAGS_TEXT)
    schema.add_field("seq", types.INT64)
    schema.add_field("vector", types.FLOAT_VECTOR, dim=dim)
    scalar = ("tags",) if connection.inverted_arrays else ()
    connection.create(target, schema, INDEXES[config.kind], build_params(config, dim), scalar)


def lacks_text_tags(connection: Connection, target: str) -> bool:
    """Whether a Lite items collection has no `tags_text`, without which its filters cannot run."""
    return connection.lite and "tags_text" not in connection.fields(target)


def lacks_tags_index(connection: Connection, target: str) -> bool:
    """Whether a server's items collection has no INVERTED index on `tags` though the server could build one (it
    was made on a 2.3 server since upgraded): its filters then run unindexed."""
    if not connection.inverted_arrays:
        return False
    return not connection.client.list_indexes(target, field_name="tags", timeout=connection.timeout)


def refuse_layout(name: str) -> Unusable:
    message = f"collection {name!r} keeps no tags_text, which filters on Milvus Lite need: run o2v index migrate"
    return Unusable(f"{message} {name}", "name")


def build_params(config: IndexConfig, dim: int) -> dict[str, Any]:
    hnsw, ivf = {"M": config.m, "efConstruction": config.ef_construction}, {"nlist": config.nlist}
    pq = {**ivf, "m": pq_parts(dim, config.pq_m), "nbits": 8}
    by_kind: dict[str, dict[str, Any]] = {"hnsw": hnsw, "ivf": ivf, "hnsw_sq8": {**hnsw, "sq_type": "SQ8"}}
    return {**by_kind, "ivf_pq": pq}.get(config.kind, {})


def search_params(config: IndexConfig, k: int, filtered: bool = False) -> dict[str, Any]:
    """HNSW's beam holds filtered-out items too: a filtered search widens it to OVERFETCH × k."""
    hnsw = {"ef": max(config.ef_search, min(OVERFETCH * k, MAX_TOP_K) if filtered else k)}
    ivf = {"nprobe": min(config.nprobe, config.nlist)}
    params = {"hnsw": hnsw, "ivf": ivf, "hnsw_sq8": hnsw, "ivf_pq": ivf}.get(config.kind, {})
    return {"metric_type": "IP", "params": params}


def to_row(item: Item, field: str, dim: int | None) -> dict[str, Any]:
    """An item (already checked) as a row with its size in bytes; refused, naming the field, past Milvus' limits."""
    text = item.text.encode("utf-8")
    if len(text) > MAX_TEXT_BYTES:
        message = f"text is {len(text)} bytes; this store keeps at most {MAX_TEXT_BYTES}"
        raise InvalidRequest(message, f"{field}.text")
    metadata = item.metadata or {}
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    tags = item_tags(metadata) + ([GIVEN] if item.given else [])
    if size > MAX_METADATA_BYTES or len(tags) > MAX_TAGS:
        values = (MAX_TAGS - 1) // 2
        message = f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON with {values} scalar values"
        raise InvalidRequest(message, f"{field}.metadata")
    row = {"pk": pk(item.id), "id": item.id, "text": item.text, "metadata": metadata, "tags": tags}
    return {**row, "bytes": len(text) + size + 22 * len(tags) + 4 * (dim or 1024)}


def fields(with_vectors: bool) -> list[str]:
    return [*FIELDS, *(["vector"] if with_vectors else [])]


def to_item(row: dict[str, Any], with_vector: bool) -> Item:
    vector = np.asarray(row["vector"], dtype=np.float32) if with_vector else None
    return Item(row["id"], row["text"], row["metadata"], GIVEN in row["tags"], vector)
