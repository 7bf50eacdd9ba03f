"""The collection interface that routes, classify, cluster, the loader and the CLI use; the checks all engines share.

Two engines implement it, one package each under engines/: faiss (`FaissCollections`, `FaissCollection`: SQLite +
FAISS, embedded, the default) and milvus (`MilvusCollections`, `MilvusCollection`; `O2V_VECTOR_STORE=milvus`).
Callers hold a `CollectionRegistry` and the `VectorCollection`s it hands out and never learn which engine answers;
the request checks live here so a bad request gets the same error, naming the same field, from either engine.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.index.config import IndexConfig
from service.index.errors import Conflict, InvalidRequest
from service.index.metadata import DEFAULT_LIMITS, Conditions, Limits, check_filter, check_metadata, check_string
from service.strings import unencodable_at

MAX_ID_CHARS = 256


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    metadata: dict[str, Any]
    given: bool = False
    """The vector was sent by the caller, not embedded from the text by the collection's model."""
    vector: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    """The stored unit vector, only when a read asked for it."""


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Reembedding:
    """What one re-embedding works with, whichever engine runs it: the served model (`embed`, fingerprint `model`),
    how many texts go to it at once, and the caller's progress and cancel hooks."""

    embed: Callable[[list[str]], np.ndarray]
    model: str
    batch_size: int = 256
    progress: Callable[[int, int], None] | None = None
    cancelled: Callable[[], bool] = lambda: False

    def report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)


class VectorCollection(ABC):
    """One named collection of items with unit vectors; every write is durable once the call returns."""

    name: str
    config: IndexConfig
    """The index kind and parameters searches use: the stored ones, with any `set_search_params` over them."""
    max_k: int = sys.maxsize
    """The most neighbours one search may ask for (Milvus caps top_k)."""
    limits: Limits = DEFAULT_LIMITS
    """Metadata and filter limits; the registry sets those of its settings."""
    reembeds: bool = False
    """Whether `reembed` is implemented by this engine."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """{name, count, dim, index, …its parameters} plus whatever the engine adds."""

    @abstractmethod
    def upsert(self, items: Sequence[Item], vectors: np.ndarray, model: str | None = None) -> int:
        """Insert or replace items by id (the last of repeated ids wins); how many were written. `model` is the
        fingerprint of the model that embedded the items not marked `given`: the collection adopts it when it has
        none and refuses the write (Conflict) when it has another, in the same step as the write."""

    @abstractmethod
    def attributes(self) -> dict[str, Any]:
        """Settings stored with the collection besides its index (classify's min_score, per-label thresholds)."""

    @abstractmethod
    def set_attributes(self, values: Mapping[str, Any]) -> None:
        """Merge `values` into the attributes (a None value removes its key); durable once this returns."""

    @abstractmethod
    def model(self) -> str | None:
        """Fingerprint of the model that embedded the collection's texts; None until the first text write."""

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
    def items(self, ids: Sequence[str], with_vectors: bool = False) -> list[Item | None]:
        """The stored items of these ids, None where there is none."""

    @abstractmethod
    def scroll(self, after: str | None, limit: int, conditions: Conditions, with_vectors: bool = False) -> list[Item]:
        """Up to `limit` items meeting `conditions` with ids after `after`, in id order (UTF-8 byte order, the
        same on every engine); limit is already checked."""

    @abstractmethod
    def count(self, conditions: Conditions) -> int:
        """Items meeting `conditions` (all of them when empty)."""

    def page(
        self, cursor: str | None, limit: int, flt: Mapping[str, Any] | None = None, with_vectors: bool = False
    ) -> tuple[list[Item], str | None]:
        """One page of items by id order after `cursor`, and the cursor of the next page (None after the last)."""
        after, limit = decode_cursor(cursor), positive(limit, "limit")
        found = self.scroll(after, limit, check_filter(flt, self.limits), with_vectors)
        return found, encode_cursor(found[-1].id) if len(found) == limit else None

    def count_where(self, flt: Mapping[str, Any] | None = None) -> int:
        """Items whose metadata matches `flt` exactly (all items without one)."""
        return self.count(check_filter(flt, self.limits))

    def reembed(
        self,
        embed: Callable[[list[str]], np.ndarray],
        model: str,
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any]:
        """Embed every stored text again with the served model and switch to the new vectors at once (the engine's
        `reembedding`); {collection, reembedded, model, seconds}."""
        if not self.reembeds:
            raise InvalidRequest(f"the {type(self).__name__} engine cannot re-embed its collections", "store")
        started = time.perf_counter()
        count = self.reembedding(Reembedding(embed, model, batch_size, progress, cancelled))
        return {"collection": self.name, "reembedded": count, "model": model, "seconds": time.perf_counter() - started}

    def reembedding(self, job: Reembedding) -> int:
        """The engine's re-embedding (where `reembeds`); how many items the model embedded."""
        raise NotImplementedError

    def check_model(self, served: str) -> None:
        """Conflict unless the texts of this collection were embedded by `served` (or none were yet): texts of two
        embedding spaces must never be compared."""
        refuse_other_model(self.name, self.model(), served)

    def adopts(self, stored: str | None, model: str) -> bool:
        """Whether a write of texts embedded by `model` makes the collection adopt it (`stored`, its model, is None
        yet); Conflict when it has another. Engines call it in the same step as the write."""
        refuse_other_model(self.name, stored, model)
        return stored is None

    def checked(self, items: Sequence[Item], vectors: np.ndarray) -> tuple[list[Item], np.ndarray]:
        """`check_items` under this collection's metadata limits."""
        return check_items(items, vectors, self.limits)

    def search(self, vector: Any, top_k: int, flt: Mapping[str, Any] | None = None) -> list[Hit]:
        """Nearest items by cosine, best first, among those whose metadata matches `flt` exactly."""
        return self.nearest(vector, check_k(self, top_k, "top_k"), check_filter(flt, self.limits))

    def search_params(self) -> dict[str, int]:
        """The search-time parameters of this collection's index kind and their values now (none for flat)."""
        return self.config.search_params()

    def set_search_params(self, **params: int) -> None:
        """Change search-time parameters (`search_params()` names them) for the later searches through this handle,
        in this process; the stored settings stay as they are. For tuning and benchmarks: the embedded engine's
        registry hands every caller of a process the same handle. InvalidRequest names a parameter the index kind
        does not read at search time, or a value out of its bounds."""
        for key in params:
            if key not in self.search_params():
                raise InvalidRequest(f"{key} is not a search-time parameter of a {self.config.kind} index", key)
        self.config = self.config.with_params(self.config.kind, params)


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

    @abstractmethod
    def migrate(self, name: str) -> list[str]:
        """Bring collection `name`'s stored layout to the one this version writes (`o2v index migrate`); the
        changes made, none when it is current. A collection of another layout is refused (Unusable) until then."""

    @abstractmethod
    def export(self, name: str, path: Path) -> str:
        """Write collection `name` at the new file `path` as a backup: the embedded engine's SQLite store format,
        holding every item, vector and setting of one moment as backup.py describes; the engine's name."""

    @abstractmethod
    def restore_from(self, name: str, path: Path) -> None:
        """Make the collection `name`, which does not exist, from the backup file at `path` (`export`'s format,
        checked: InvalidRequest when it cannot be restored)."""

    while_locked: Callable[[str, str], object] = staticmethod(lambda operation, name: None)
    """Called with (operation, collection name) by create and drop (and get, on the embedded engine, which opens
    collections under the lock) with the registry's lock held, before the store is touched. Does nothing: a hook
    where a test makes the store answer slowly."""

    remote = False
    """Whether the store is a server /readyz must ask (check); local files always answer."""

    def check(self) -> None:
        """For /readyz: StoreUnavailable when the store does not answer (a remote one); local files always do."""
        return None


def merged(attributes: Mapping[str, Any] | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes with `values` set over them; a None value removes its key."""
    out = {**(attributes or {}), **values}
    return {key: value for key, value in out.items() if value is not None}


def refuse_other_model(name: str, stored: str | None, served: str) -> None:
    if stored is not None and stored != served:
        message = (
            f"collection {name!r} was embedded by model {stored!r}; this server runs {served!r}. Serve that model, "
            f"send vectors, or re-embed the collection (o2v index reembed {name})"
        )
        raise Conflict(message, "model")


def encode_cursor(item_id: str) -> str:
    """An opaque scroll cursor: the hex of the last id's UTF-8, which also orders as the ids do."""
    return item_id.encode("utf-8").hex()


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        item_id = bytes.fromhex(cursor).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("not a cursor this collection gave", "cursor") from None
    if not valid_id(item_id):
        raise InvalidRequest("not a cursor this collection gave", "cursor")
    return item_id


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
        metadata = check_metadata(item.metadata, f"items[{i}].metadata", limits)
        last[item.id] = Item(item.id, item.text, metadata, item.given)
        where[item.id] = i
    keep = sorted(where.values())
    unit = unit_vectors(vectors, lambda row: f"items[{row}].vector")
    return [last[items[i].id] for i in keep], unit[keep]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Float32, C-contiguous, each row scaled to length 1; zero and non-finite rows come back all zeros (callers
    refuse them). Scaled in float64 by the row's largest value first, so rows of 1e38s (whose float32 norm is inf)
    or of subnormals (whose float32 norm is 0) keep their direction instead of becoming zeros."""
    wide = np.asarray(vectors, dtype=np.float64)
    if wide.size == 0:
        return np.zeros(wide.shape, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        peak = np.abs(wide).max(axis=1, keepdims=True)
        usable = np.isfinite(peak) & (peak > 0)
        scaled = wide / np.where(usable, peak, 1.0)
        norms = np.linalg.norm(scaled, axis=1, keepdims=True)
        unit = np.where(usable, scaled / np.where(usable, norms, 1.0), 0.0)
    return np.ascontiguousarray(unit, dtype=np.float32)


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
        if getattr(config, key) != value:
            raise Conflict(f"collection exists with {key}={getattr(config, key)}", key)
