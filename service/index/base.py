"""The collection interface that routes, classify, cluster, the loader and the CLI use; the checks all engines share.

Two engines implement it: SQLite + FAISS (collection.py, registry.py; embedded, the default) and Milvus
(milvus.py; `O2V_VECTOR_STORE=milvus`). Callers hold a `CollectionRegistry` and the `VectorCollection`s it hands out
and never learn which engine answers; the request checks live here so a bad request gets the same error, naming the
same field, from either engine.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.index.errors import Conflict, InvalidRequest
from service.index.metadata import DEFAULT_LIMITS, Conditions, Limits, check_filter, check_metadata, check_string
from service.index.vector_index import PARAMS, IndexConfig, unit_rows
from service.strings import unencodable_at

MAX_ID_CHARS = 256


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


class VectorCollection(ABC):
    """One named collection of items with unit vectors; every write is durable once the call returns."""

    name: str
    max_k: int = sys.maxsize
    """The most neighbours one search may ask for (Milvus caps top_k)."""
    limits: Limits = DEFAULT_LIMITS
    """Metadata and filter limits; the registry sets those of its settings."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """{name, count, dim, index, …its parameters} plus whatever the engine adds."""

    @abstractmethod
    def upsert(self, items: Sequence[Item], vectors: np.ndarray) -> int:
        """Insert or replace items by id (the last of repeated ids wins); how many were written."""

    @abstractmethod
    def delete(self, item_id: str) -> bool:
        """Remove an item; False if there was none."""

    @abstractmethod
    def nearest(self, vector: Any, k: int, conditions: Conditions) -> list[Hit]:
        """The k nearest items by cosine, best first, among those meeting `conditions`; k is already checked."""

    @abstractmethod
    def vectors(self) -> tuple[list[str], np.ndarray]:
        """(ids, unit vectors) of every item, in an order that is the same for the same items (k-means reads it)."""

    @abstractmethod
    def items(self, ids: Sequence[str]) -> list[Item | None]:
        """The stored items of these ids, None where there is none."""

    def search(self, vector: Any, top_k: int, flt: Mapping[str, Any] | None = None) -> list[Hit]:
        """Nearest items by cosine, best first, among those whose metadata matches `flt` exactly."""
        return self.nearest(vector, check_k(self, top_k, "top_k"), check_filter(flt, self.limits))


class CollectionRegistry(ABC):
    """The collections of one data directory or one Milvus database; thread-safe; `close()` at shutdown."""

    @abstractmethod
    def create(
        self, name: str, index: str | None = None, params: dict[str, Any] | None = None
    ) -> tuple[VectorCollection, bool]:
        """(collection, created?). Asking again for the same settings is a no-op; for other settings, a Conflict."""

    @abstractmethod
    def get(self, name: str) -> VectorCollection:
        """The collection, or NotFound."""

    @abstractmethod
    def names(self) -> list[str]:
        """Every collection's name, sorted."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Remove the collection and its items, or NotFound."""

    @abstractmethod
    def close(self) -> None:
        """Release files and connections."""


def positive(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("must be a positive integer", field)
    return value


def check_k(collection: VectorCollection, value: Any, field: str) -> int:
    """A positive neighbour count the engine can answer."""
    if positive(value, field) > collection.max_k:
        raise InvalidRequest(f"at most {collection.max_k} neighbours can be asked of this store", field)
    return value


def valid_id(value: Any) -> bool:
    """An item id any engine can store: a string of 1 to MAX_ID_CHARS characters, valid UTF-8."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and unencodable_at(value) is None


def check_items(
    items: Sequence[Item], vectors: np.ndarray, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[Item], np.ndarray]:
    """Valid ids, texts, metadata and vectors; the last of repeated ids kept; unit vectors."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != len(items):
        raise InvalidRequest("one vector per item is needed", "items")
    last: dict[str, Item] = {}
    where: dict[str, int] = {}
    for i, item in enumerate(items):
        if not valid_id(item.id):
            message = f"id must be a string of 1 to {MAX_ID_CHARS} characters, valid UTF-8"
            raise InvalidRequest(message, f"items[{i}].id")
        check_string(item.text, f"items[{i}].text", "text")
        last[item.id] = Item(item.id, item.text, check_metadata(item.metadata, f"items[{i}].metadata", limits))
        where[item.id] = i
    keep = sorted(where.values())
    unit = unit_vectors(vectors, lambda row: f"items[{row}].vector")
    return [last[items[i].id] for i in keep], unit[keep]


def unit_vectors(vectors: Any, field: Callable[[int], str]) -> np.ndarray:
    """The one rule for stored and query vectors alike: finite, not all zeros, at least one number; returned as
    float32 unit rows. InvalidRequest names `field(row)` of the first row that breaks it."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise InvalidRequest("a vector needs at least one number", field(0))
    unit = unit_rows(vectors)
    bad = np.flatnonzero(~unit.any(axis=1))
    if len(bad):
        raise InvalidRequest("vector must be finite and not all zeros", field(int(bad[0])))
    return unit


def check_dim(vectors: np.ndarray, dim: int) -> None:
    if vectors.shape[1] != dim:
        raise InvalidRequest(f"vectors have {vectors.shape[1]} numbers, the collection's have {dim}", "items.vector")


def check_query(vector: Any, dim: int | None) -> np.ndarray:
    """The query as a float32 unit vector of the collection's dimension (any length while it has none)."""
    query = np.asarray(vector)
    if query.ndim != 1 or (dim is not None and len(query) != dim):
        raise InvalidRequest(f"query vector must have {dim} numbers, got shape {list(query.shape)}", "vector")
    return unit_vectors(query[None, :], lambda _: "vector")[0]


def check_same(config: IndexConfig, index: str | None, params: dict[str, Any]) -> None:
    """Raise Conflict naming the first setting asked for that differs from the existing collection's."""
    if index is not None and index != config.kind:
        raise Conflict(f"collection exists with index {config.kind!r}", "index")
    config.with_params(config.kind, params)
    for key, value in params.items():
        if key in PARAMS[config.kind] and getattr(config, key) != value:
            raise Conflict(f"collection exists with {key}={getattr(config, key)}", key)
