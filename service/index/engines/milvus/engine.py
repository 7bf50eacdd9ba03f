"""The Milvus engine: collections in a Milvus cluster, Standalone, Zilliz Cloud or Milvus Lite, via `MilvusClient`.

Selected by `O2V_VECTOR_STORE=milvus`; `O2V_MILVUS_URI` is `http(s)://host:19530` or a local `.db` path (Milvus Lite,
one process per file). The same interface, semantics and errors as the embedded engine (base.py), so the gateway
keeps no state of its own and any number of replicas can serve one Milvus. In Milvus:

- `o2v_collections`, the catalog: a row per collection, {name, config (index kind and parameters), dim}. A
  collection exists from its PUT, but Milvus fixes a vector field's dimension when it creates the collection, and
  the dimension is known only at the first write; so the items' collection is made by the first upsert.
- `o2v_items_<name>`, the items: pk (hex of the UTF-8 id), id, text, metadata (JSON), tags (ARRAY<INT64>), seq
  (write order, so k-means reads items in the order the embedded engine does and gives the same clusters) and
  vector (FLOAT_VECTOR of unit vectors, metric IP: the score is the cosine, as FAISS's is). Filters go to Milvus
  as conditions on the tags, indexed: on a server an INVERTED index on `tags` (made on first use for collections
  of older versions), on Milvus Lite the tags again as text (`tags_text`, matched by a vectorised LIKE); a Lite
  collection made before `tags_text` existed keeps the old way (unfiltered neighbours first, see `nearest`)
  until it is re-embedded or restored from a backup. A re-embedded collection's items live in
  `o2v_items_<name>_r<n>`, which the catalog row names (config "items"). Flat is FLAT, hnsw is HNSW (M,
  efConstruction; ef = max(ef_search, top_k) per search, OVERFETCH × top_k when filtered), ivf is IVF_FLAT (nlist;
  nprobe per search), hnsw_sq8 is HNSW_SQ with SQ8 codes and ivf_pq is IVF_PQ (8-bit parts; a Milvus server only,
  Lite has none); Milvus answers both from their codes (rerank is FAISS's alone).
  Consistency is chosen per operation (`level`): reads of a collection this process wrote are Session
  (they wait for this process' last write, read-your-writes), other reads Bounded (they see every write older
  than the server's `common.gracefulTime`, 5 s by default, and in practice whatever the server consumed, a time
  tick or so after the write); only listing the collections, a catalog miss, backups and re-embedding read Strong.
  Servers before 2.4 have no INVERTED index on arrays: there `array_contains_all` is evaluated without one.

No caller's text ever enters a Milvus expression: expressions.py builds them from hex digits and integers only.
lite.py starts and stops the in-process server of a local `.db` file; reembed.py re-embeds a collection.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from service.index.base import (
    MAX_ID_CHARS,
    CollectionRegistry,
    Hit,
    Item,
    VectorCollection,
    check_dim,
    check_items,
    check_query,
    check_same,
    merged,
    refuse_other_model,
    valid_id,
)
from service.index.engines.faiss.vector_index import IndexConfig, pq_parts
from service.index.engines.milvus import lite
from service.index.engines.milvus.expressions import (
    GIVEN,
    item_tags,
    name_filter,
    pk,
    pk_after,
    pk_filter,
    tags_filter,
    tags_text,
)
from service.index.errors import InvalidRequest, NotFound, StoreUnavailable
from service.index.metadata import ANY, DEFAULT_LIMITS, Conditions, Limits, matches
from service.index.names import check_name
from service.settings import Settings

log = logging.getLogger(__name__)

CATALOG = "o2v_collections"
ITEMS_PREFIX = "o2v_items_"
STRONG, SESSION, BOUNDED = "Strong", "Session", "Bounded"
INVERTED_ARRAYS = (2, 4)
"""The first Milvus server version with an INVERTED index on ARRAY fields (2.3 refuses to index an array)."""
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
TEXT, INDEXED, SCAN = "text", "indexed", "scan"
"""How an items collection's filters run: LIKE on tags_text (Lite), array_contains_all on indexed tags (a server),
array_contains_all evaluated row by row (a Lite collection of an older version)."""
MAX_BATCH_BYTES = 16 * 2**20
"""Rows per upsert call are cut to stay well under Milvus' 64 MiB gRPC message."""
READ_BATCH = 4_096
LOAD_S = 60.0
"""Limit of loading a collection (once per collection and process): a server takes seconds even for an empty one
(2.5-4 s on the embedded 2.3 server), longer than a call's limit may be."""
COLLECTION_NOT_FOUND = 100
INVALID_PARAMETER = 1100
INDEXES = {"flat": "FLAT", "hnsw": "HNSW", "ivf": "IVF_FLAT", "hnsw_sq8": "HNSW_SQ", "ivf_pq": "IVF_PQ"}
NOT_ON_LITE = ("ivf_pq",)
OVERFETCH = 20
"""Unfiltered neighbours looked at before a filter goes to Milvus: enough for a filter matching 1 item in 10."""
EXTRAS = ("model", "attributes", "items", "reembedding")
"""Keys of a catalog row's config JSON that are not index settings."""


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:
        raise RuntimeError(
            "O2V_VECTOR_STORE=milvus needs pymilvus: pip install 'object2vec-service[milvus]' for a Milvus "
            "server, 'object2vec-service[milvus-lite]' for a local .db file"
        ) from exc
    return pymilvus


def server_version(text: str) -> tuple[int, ...]:
    """(2, 3, 5) of "v2.3.5-lite"; () when unreadable (then every feature is assumed)."""
    found = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(g) for g in found.groups() if g is not None) if found else ()


def items_collection(name: str) -> str:
    """The Milvus name of a collection's items; injective (`_` → `__`, `-` → `_d`) as Milvus names allow no `-`."""
    return ITEMS_PREFIX + check_name(name).replace("_", "__").replace("-", "_d")


def _chunks(values: list, size: int) -> Iterator[list]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


class WriteClock:
    """Write-order numbers: nanoseconds since the epoch, strictly increasing within this process (across replicas
    the order of writes is kept up to their clocks' skew, and the same stored items always read back alike)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> int:
        """The first of n consecutive numbers."""
        with self._lock:
            first = max(time.time_ns(), self._last + 1)
            self._last = first + n - 1
            return first


WRITE_CLOCK = WriteClock()


class SharedLock:
    """Any number of `shared()` holders or one `exclusive()`. A waiting exclusive holds back new shared holders
    (so a drop is not starved by a stream of writes) but not a thread that already holds it shared (so nested
    holds never deadlock). Calls on collections hold it shared and a drop exclusive: a drop waits for the calls in
    flight in this process, and later calls find the collection gone (404) instead of Milvus failing them half-way
    (503)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0
        self._mine = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        held = getattr(self._mine, "held", 0)
        with self._changed:
            while not held and (self._exclusive or self._waiting):
                self._changed.wait()
            self._shared += 1
        self._mine.held = held + 1
        try:
            yield
        finally:
            self._mine.held = held
            with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._changed:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._changed.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()


class MilvusCollections(CollectionRegistry):
    """The collections of one Milvus database. Holds nothing but the client: every `get` reads the catalog, so a
    collection made or dropped through another replica is seen at once."""

    remote = True  # a server (or Milvus Lite's in-process one): /readyz asks it

    def __init__(
        self,
        uri: str,
        token: str | None = None,
        db: str | None = None,
        defaults: IndexConfig | None = None,
        timeout: float = 10.0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.uri = uri
        self.limits = limits
        self.lite = lite.is_lite(uri)
        self.defaults = defaults or IndexConfig()
        self.timeout = timeout
        self._lock = threading.Lock()
        self._dropping = SharedLock()
        self._creating = threading.Lock()
        self._loaded: set[str] = set()
        self._forms: dict[str, str] = {}
        """How each items collection's filters run (TEXT, INDEXED or SCAN), learned once per process."""
        self._writes: dict[str, SharedLock] = {}
        """Per collection: writes in this process hold it shared, a re-embedding's switch and a backup exclusive."""
        self._moved: dict[str, tuple[str, int]] = {}
        """Collections re-embedded through this process: name → (items collection, dim), for handles made before."""
        self._written: dict[str, str] = {}
        """Milvus collections this process wrote to → the consistency of their reads (see `level`)."""
        if self.lite:
            lite.prepare(uri)
        self.pymilvus = _pymilvus()
        with self.errors():
            self.client = self.pymilvus.MilvusClient(uri=uri, token=token or "", db_name=db or "", timeout=timeout)
        if self.lite:
            lite.opened(uri)
        with self.errors():
            self.version = () if self.lite else server_version(self.client.get_server_version(timeout=timeout))
            self._ensure_catalog()
        self.inverted_arrays = not self.lite and not (self.version and self.version < INVERTED_ARRAYS)
        """Whether `tags` gets an INVERTED index (a server of 2.4 or later)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> MilvusCollections:
        token = settings.milvus.token.get_secret_value() if settings.milvus.token else None
        uri = settings.milvus.uri or str(Path(settings.data_dir) / "milvus.db")
        defaults, limits = IndexConfig.defaults(settings), Limits.from_settings(settings)
        return cls(uri, token, settings.milvus.db, defaults, settings.milvus.timeout_s, limits)

    @contextmanager
    def errors(self, name: str | None = None) -> Iterator[None]:
        """Milvus' failures as the collection errors the API answers: a missing collection is NotFound (dropped
        meanwhile, perhaps through another replica), anything else StoreUnavailable (503, try again). With a
        collection's name, a drop in this process waits until the call is done."""
        import grpc

        try:
            with self._dropping.shared() if name is not None else nullcontext():
                yield
        except self.pymilvus.MilvusException as exc:
            if exc.code == COLLECTION_NOT_FOUND and name is not None:
                self._not_found(name, exc)
            log.warning("Milvus call failed: %s", exc)
            raise StoreUnavailable(f"the vector store did not answer: {exc.message}") from exc
        except grpc.RpcError as exc:  # pymilvus lets some through as they are (a deadline, a server gone)
            log.warning("Milvus call failed: %s", exc)
            raise StoreUnavailable(f"the vector store did not answer: {exc.code().name}") from exc

    def _not_found(self, name: str, exc: Exception) -> None:
        """An items collection gone under a call: NotFound when the collection was dropped; when its catalog row
        is still there (Strong), another replica re-embedded it (it names a new items collection): try again."""
        try:
            row = self._row(name, STRONG)
        except Exception:
            row = None
        if row is None:
            raise NotFound.collection(name) from exc
        self._forms.clear()
        raise StoreUnavailable(f"collection {name!r} changed through another replica meanwhile; try again") from exc

    def level(self, collection: str) -> str:
        """The consistency of a read of `collection`: Session once this process wrote to it (the read waits for
        this process' last acknowledged write to it, and no longer), else Bounded (no wait: every write older
        than the server's gracefulTime, and in practice all it consumed so far)."""
        return self._written.get(collection, BOUNDED)

    def wrote(self, collection: str, delete: bool = False) -> None:
        """After an acknowledged write. pymilvus keeps an upsert's timestamp per collection for Session reads, but
        not a delete's (Milvus 2.3 answers a delete without one): after a delete this process reads the collection
        Strong, until its next upsert."""
        self._written[collection] = STRONG if delete else SESSION

    # -- the catalog

    def _ensure_catalog(self) -> None:
        if self.client.has_collection(CATALOG, timeout=self.timeout):
            self.loaded(CATALOG)
            return
        types = self.pymilvus.DataType
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("name", types.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("config", types.JSON)
        schema.add_field("dim", types.INT64)
        schema.add_field("vector", types.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field; this one is unused
        self._create(CATALOG, schema, "FLAT", {})

    def loaded(self, collection: str) -> str:
        """Load a collection once per process: Milvus Lite forgets what was loaded when its process ends (a
        cluster keeps it), and searches and queries need it loaded. Loading a loaded collection changes nothing."""
        if collection not in self._loaded:
            self.client.load_collection(collection, timeout=max(self.timeout, LOAD_S))
            self._loaded.add(collection)
        return collection

    def _create(
        self, collection: str, schema: Any, index: str, params: dict[str, Any], scalar: Sequence[str] = ()
    ) -> None:
        """Create, index and load, unless it exists: another replica may be creating the same one right now.
        pymilvus waits for an index build in fixed half-second sleeps; an empty collection's index needs none.
        The build parameters go as one JSON `params` entry, the wire form every Milvus server reads; pymilvus 3
        would send them as separate entries, which Milvus Lite 3.2 ignores."""
        index_params = self.client.prepare_index_params()
        index_params.add_index("vector", index_type=index, metric_type="IP", params={"params": params})
        for field in scalar:
            index_params.add_index(field, index_type="INVERTED")
        try:
            self.client.create_collection(collection, schema=schema, consistency_level=BOUNDED, timeout=self.timeout)
        except self.pymilvus.MilvusException:
            if not self.client.has_collection(collection, timeout=self.timeout):
                raise
            return  # another replica made it
        try:
            self.client.create_index(collection, index_params, timeout=self.timeout, sync=False)
        except self.pymilvus.MilvusException as exc:
            self.client.drop_collection(collection, timeout=self.timeout)
            if exc.code == INVALID_PARAMETER or "invalid index type" in exc.message:
                version = ".".join(map(str, self.version))
                raise InvalidRequest(f"this Milvus server ({version}) cannot build a {index} index", "index") from exc
            raise
        self.client.load_collection(collection, timeout=max(self.timeout, LOAD_S))
        self._loaded.add(collection)

    def form(self, collection: str) -> str:
        """How filters run on an items collection (TEXT, INDEXED or SCAN). On a server, an INVERTED index on
        `tags` is made here if a collection of an older version has none."""
        if collection not in self._forms:
            fields = {f["name"] for f in self.client.describe_collection(collection, timeout=self.timeout)["fields"]}
            if "tags_text" in fields:
                self._forms[collection] = TEXT
            elif self.lite:
                self._forms[collection] = SCAN
            else:
                indexed = self.client.list_indexes(collection, field_name="tags", timeout=self.timeout)
                if self.inverted_arrays and not indexed:
                    params = self.client.prepare_index_params()
                    params.add_index("tags", index_type="INVERTED")
                    self.client.create_index(collection, params, timeout=self.timeout, sync=False)
                self._forms[collection] = INDEXED
        return self._forms[collection]

    @contextmanager
    def writing(self, name: str, exclusive: bool = False) -> Iterator[None]:
        """Writes to collection `name` in this process hold this shared; a re-embedding's last catch-up and
        switch, and a backup, hold it exclusive, so no write of this process falls between."""
        with self._lock:
            lock = self._writes.setdefault(name, SharedLock())
        with lock.exclusive() if exclusive else lock.shared():
            yield

    def _forget(self, collection: str) -> None:
        self._loaded.discard(collection)
        self._forms.pop(collection, None)
        self._written.pop(collection, None)

    def _drop_items(self, name: str, keep: str | None = None) -> None:
        """Drop every items collection of `name` but `keep`: the default one, and any a re-embedding made
        (`_r<n>`: no other collection's items name has `_r` where an escape would start)."""
        base = items_collection(name)
        for found in self.client.list_collections(timeout=self.timeout):
            if found != keep and (found == base or found.startswith(base + "_r")):
                self.client.drop_collection(found, timeout=self.timeout)
                self._forget(found)

    def query(
        self, collection: str, expr: str, fields: list[str], level: str | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """A query at `level`, by default the collection's (`level`)."""
        level = level or self.level(collection)
        return self.client.query(
            collection, filter=expr, output_fields=fields, consistency_level=level, timeout=self.timeout, **kwargs
        )

    def barrier(self, collection: str, level: str | None = None) -> None:
        """Before an iterator read: pymilvus sends an iterator's queries with no consistency of their own (and
        Milvus 2.3 gives query_iterator no snapshot timestamp), so one plain query at `level` first waits until
        the server has consumed what that level must see."""
        if not self.lite:
            self.query(collection, "", ["pk"], level, limit=1)

    def _row(self, name: str, level: str | None = None) -> dict[str, Any] | None:
        """The catalog row of `name`. A miss is read again Strong, so a collection just made through another
        replica is found; a row found may be a moment old (a drop or re-embedding through another replica then
        shows as the items collection gone, see `_not_found`)."""
        rows = self.query(CATALOG, name_filter(name), ["config", "dim"], level)
        if not rows and level != STRONG:
            rows = self.query(CATALOG, name_filter(name), ["config", "dim"], STRONG)
        return rows[0] if rows else None

    def _write_row(self, name: str, config: dict[str, Any], dim: int, extras: dict[str, Any] | None = None) -> None:
        """The catalog row; the model fingerprint and the attributes ride in the config JSON (EXTRAS), so catalogs
        of older versions still read."""
        row = {"name": name, "config": {**config, **(extras or {})}, "dim": dim, "vector": [1.0, 0.0]}
        self.client.upsert(CATALOG, [row], timeout=self.timeout)
        self.wrote(CATALOG)

    def _handle(self, name: str, row: dict[str, Any]) -> MilvusCollection:
        stored = row["config"] if isinstance(row["config"], dict) else {}
        config = {k: v for k, v in stored.items() if k not in EXTRAS} if isinstance(row["config"], dict) else None
        collection = MilvusCollection(self, name, self.defaults.from_public(config, name), int(row["dim"]) or None)
        collection.target = stored.get("items") or collection.target
        return collection

    # -- the registry

    def create(
        self, name: str, index: str | None = None, params: dict[str, Any] | None = None
    ) -> tuple[MilvusCollection, bool]:
        params = params or {}
        with self._lock, self.errors(name):
            row = self._row(name)
            if row is not None:
                collection = self._handle(name, row)
                check_same(collection.config, index, params)
                return collection, False
            config = self.defaults.with_params(index, params)
            if self.lite and config.kind in NOT_ON_LITE:
                raise InvalidRequest(f"Milvus Lite has no {INDEXES[config.kind]} index: use a Milvus server", "index")
            self._drop_items(name)  # left by a broken drop or a killed re-embedding
            self._moved.pop(name, None)
            self._write_row(name, config.public(), 0)
            return MilvusCollection(self, name, config, None), True

    def get(self, name: str) -> MilvusCollection:
        with self.errors(name):
            row = self._row(name)
        if row is None:
            raise NotFound.collection(name)
        return self._handle(name, row)

    def names(self) -> list[str]:
        with self.errors():
            rows = self.query(CATALOG, "", ["name"], STRONG, limit=MAX_TOP_K)
        return sorted(r["name"] for r in rows)

    def drop(self, name: str) -> None:
        """The catalog row goes first, so no replica finds the collection while its items are being dropped."""
        with self._lock, self._dropping.exclusive(), self.errors():
            if self._row(name) is None:
                raise NotFound.collection(name)
            self.client.delete(CATALOG, filter=name_filter(name), timeout=self.timeout)
            self.wrote(CATALOG, delete=True)
            self._drop_items(name)
            self._moved.pop(name, None)

    def check(self) -> None:
        """One cheap call (list the collections): StoreUnavailable when Milvus does not answer in time."""
        with self.errors():
            self.client.list_collections(timeout=self.timeout)

    def close(self) -> None:
        """Close the connection; the last user of a Milvus Lite file also stops its in-process server, which
        closes (and fsyncs) its write-ahead log and lets another process open the file."""
        self.client.close()
        if self.lite:
            lite.closed(self.uri)


class MilvusCollection(VectorCollection):
    """A handle on one collection: its name, config and (once written) dimension, read from the catalog."""

    max_k = MAX_TOP_K
    reembeds = True

    def __init__(self, owner: MilvusCollections, name: str, config: IndexConfig, dim: int | None) -> None:
        self.owner = owner
        self.client = owner.client
        self.timeout = owner.timeout
        self.limits = owner.limits
        self.name = name
        self.config = config
        self.dim = dim
        self.target = items_collection(name)

    def _items(self) -> str | None:
        """The items' Milvus collection, None while nothing was ever written; NotFound once dropped."""
        moved = self.owner._moved.get(self.name)
        if moved is not None and moved[0] != self.target:  # re-embedded through this process since this handle
            self.target, self.dim = moved
        if self.dim is None:
            with self.owner.errors(self.name):
                row = self.owner._row(self.name)
            if row is None:
                raise NotFound.dropped(self.name)
            self.dim = int(row["dim"]) or None
        return self.owner.loaded(self.target) if self.dim is not None else None

    def _ensure_items(self, dim: int) -> str:
        """The first write creates the items' collection with its dimension; a racing replica's wins (in this
        process first writes take turns: Milvus Lite fails two creations of one collection at once)."""
        if self._items() is not None:
            return self.target
        o = self.owner
        with o._creating:
            if not o.client.has_collection(self.target, timeout=self.timeout):
                self._create_items(dim)
        fields = o.client.describe_collection(self.target, timeout=self.timeout)["fields"]
        self.dim = int(next(f for f in fields if f["name"] == "vector")["params"]["dim"])
        self._rewrite(self.dim)
        return self.target

    def _catalog(self) -> dict[str, Any]:
        row = self.owner._row(self.name)
        if row is None:
            raise NotFound.dropped(self.name)
        return row

    def _extras(self) -> dict[str, Any]:
        """The model fingerprint and attributes in the catalog row; NotFound once the collection was dropped."""
        config = self._catalog()["config"]
        return {key: config[key] for key in EXTRAS if key in config}

    def _rewrite(self, dim: int | None = None, **extras: Any) -> None:
        """The catalog row with these extras changed, and its dimension unless as stored (another replica may have
        set it). The index settings are written back as stored, never this handle's `set_search_params`."""
        row = self._catalog()
        self.owner._write_row(self.name, row["config"], int(row["dim"]) if dim is None else dim, extras)

    def _catalog_model(self) -> str | None:
        return self._extras().get("model")

    def model(self) -> str | None:
        with self.owner.errors(self.name):
            return self._catalog_model()

    def attributes(self) -> dict[str, Any]:
        with self.owner.errors(self.name):
            return self._extras().get("attributes") or {}

    def set_attributes(self, values: Mapping[str, Any]) -> None:
        with self.owner.errors(self.name):
            self._rewrite(attributes=merged(self._extras().get("attributes"), values))

    def _create_items(self, dim: int, target: str | None = None) -> None:
        """The items' collection (`target`, by default this handle's): a row per item, the vector of `dim`
        numbers, indexed as the config says; the tags indexed for filters (INVERTED on a server, as text on Lite)."""
        o, types = self.owner, self.owner.pymilvus.DataType
        schema = o.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", types.VARCHAR, is_primary=True, max_length=2 * 4 * MAX_ID_CHARS)  # hex of UTF-8
        schema.add_field("id", types.VARCHAR, max_length=4 * MAX_ID_CHARS)
        schema.add_field("text", types.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field("metadata", types.JSON)
        schema.add_field("tags", types.ARRAY, element_type=types.INT64, max_capacity=MAX_TAGS)
        if o.lite:
            schema.add_field("tags_text", types.VARCHAR, max_length=MAX_TAGS_TEXT)
        schema.add_field("seq", types.INT64)
        schema.add_field("vector", types.FLOAT_VECTOR, dim=dim)
        scalar = ("tags",) if o.inverted_arrays else ()
        o._create(target or self.target, schema, INDEXES[self.config.kind], self._build_params(dim), scalar)

    def _build_params(self, dim: int) -> dict[str, Any]:
        c = self.config
        hnsw, ivf = {"M": c.m, "efConstruction": c.ef_construction}, {"nlist": c.nlist}
        pq = {**ivf, "m": pq_parts(dim, c.pq_m), "nbits": 8}
        by_kind: dict[str, dict[str, Any]] = {"hnsw": hnsw, "ivf": ivf, "hnsw_sq8": {**hnsw, "sq_type": "SQ8"}}
        return {**by_kind, "ivf_pq": pq}.get(c.kind, {})

    def _search_params(self, k: int, filtered: bool = False) -> dict[str, Any]:
        """HNSW's beam holds filtered-out items too: a filtered search widens it to OVERFETCH × k, the neighbours
        the embedded engine and older versions of this one look among for a filter matching 1 item in 10."""
        c = self.config
        hnsw = {"ef": max(c.ef_search, min(OVERFETCH * k, MAX_TOP_K) if filtered else k)}
        ivf = {"nprobe": min(c.nprobe, c.nlist)}
        params = {"hnsw": hnsw, "ivf": ivf, "hnsw_sq8": hnsw, "ivf_pq": ivf}.get(c.kind, {})
        return {"metric_type": "IP", "params": params}

    # -- writes

    def upsert(self, items: Sequence[Item], vectors: np.ndarray, model: str | None = None) -> int:
        """Replace by id. A batch over MAX_BATCH_BYTES goes in several calls; a failed call may leave part of it
        written, and sending the same batch again is safe. The model is checked and adopted before the items are
        written (Milvus has no transaction to do it in: two replicas of different models adopting at the same
        moment is the one race left, and the catalog keeps the later)."""
        checked, vectors = check_items(items, vectors, self.limits)
        rows = [self._to_row(item, f"items[{i}]") for i, item in enumerate(items)]
        by_id = {r["id"]: r for r in rows}  # the last of repeated ids, as check_items keeps
        with self.owner.writing(self.name), self.owner.errors(self.name):
            target = self._ensure_items(vectors.shape[1])
            text = self.owner.form(target) == TEXT
            check_dim(vectors, self.dim or 0)
            if model is not None:
                stored = self._catalog_model()
                refuse_other_model(self.name, stored, model)
                if stored is None:
                    self._rewrite(model=model)
            batch: list[dict[str, Any]] = []
            size, seq = 0, WRITE_CLOCK.take(len(checked))
            for i, (item, vector) in enumerate(zip(checked, vectors, strict=True)):
                row = {**by_id[item.id], "seq": seq + i, "vector": vector}
                if text:
                    row["tags_text"] = tags_text(row["tags"])
                batch.append(row)
                size += row.pop("bytes")
                if size >= MAX_BATCH_BYTES:
                    self.client.upsert(target, batch, timeout=self.timeout)
                    self.owner.wrote(target)
                    batch, size = [], 0
            if batch:
                self.client.upsert(target, batch, timeout=self.timeout)
                self.owner.wrote(target)
        return len(checked)

    def _to_row(self, item: Item, field: str) -> dict[str, Any]:
        """An item (already checked) as a row with its size; refused, naming the field, past Milvus' limits."""
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
        return {**row, "bytes": len(text) + size + 22 * len(tags) + 4 * (self.dim or 1024)}

    def delete(self, item_id: str) -> bool:
        if not valid_id(item_id):
            return False
        with self.owner.writing(self.name), self.owner.errors(self.name):
            target = self._items()
            if target is None:
                return False
            expr = pk_filter([item_id])
            if not self.owner.query(target, expr, ["pk"]):
                return False
            self.client.delete(target, filter=expr, timeout=self.timeout)
            self.owner.wrote(target, delete=True)
        return True

    # -- reads

    def info(self) -> dict[str, Any]:
        with self.owner.errors(self.name):
            target = self._items()
            count = int(self.owner.query(target, "", ["count(*)"])[0]["count(*)"]) if target else 0
            extras = self._extras()
        info = {"name": self.name, "count": count, "dim": self.dim, **self.config.public()}
        return {**info, "model": extras.get("model"), **(extras.get("attributes") or {})}

    def count(self, conditions: Conditions) -> int:
        """Counted by the tags alone: a 64-bit hash collision could add one, which a count can bear."""
        with self.owner.errors(self.name):
            target = self._items()
            return self._count(target, conditions) if target is not None else 0

    def scroll(self, after: str | None, limit: int, conditions: Conditions, with_vectors: bool = False) -> list[Item]:
        """pk is the hex of the id's UTF-8, so pk order is the embedded engine's id order. Milvus answers a query
        with a limit in pk order; the page is sorted again all the same, and checked against the metadata."""
        terms = [pk_after(after)] if after is not None else []
        with self.owner.errors(self.name):
            target = self._items()
            if target is None:
                return []
            terms += [self._filter(target, conditions)] if conditions else []
            self.owner.barrier(target)
            rows = self.owner.query(
                target, " and ".join(terms), self._fields(with_vectors), limit=limit, iterator="True"
            )
        rows.sort(key=lambda r: r["pk"])
        return [_item(r, with_vectors) for r in rows if matches(r["metadata"], conditions)]

    @staticmethod
    def _fields(with_vectors: bool) -> list[str]:
        return ["pk", "id", "text", "metadata", "tags", *(["vector"] if with_vectors else [])]

    def nearest(self, vector: Any, k: int, conditions: Conditions) -> list[Hit]:
        """The k nearest items meeting `conditions`; hits are checked against their metadata all the same.

        When every condition is "has key" (classify's label key, which most collections give every item), the k
        nearest unfiltered come first: if all of them match they are the answer, at the cost of a plain search.
        Otherwise the filter goes to Milvus, which evaluates it on its index (one search, k hits). Only a Lite
        collection of an older version (SCAN: Lite checks every row in Python) first looks among OVERFETCH × k
        unfiltered neighbours. Either way the answer is the one the filtered search gives.
        """
        with self.owner.errors(self.name):
            target = self._items()  # first: it may learn the dimension another replica's first write set
            query = check_query(vector, self.dim)
            if target is None:
                return []
            fetches = [k] if conditions and all(v is ANY for v in conditions.values()) else []
            scan = conditions and self.owner.form(target) == SCAN
            fetches += [min(self.max_k, OVERFETCH * k)] if scan else []
            for fetch in fetches:
                raw = self._search(target, query, fetch, {})
                hits = [hit for hit in raw if matches(hit.metadata, conditions)]
                if len(hits) >= k or len(raw) < fetch:
                    return hits[:k]
            return [hit for hit in self._search(target, query, k, conditions) if matches(hit.metadata, conditions)]

    def _filter(self, target: str, conditions: Conditions) -> str:
        return tags_filter(conditions, self.owner.form(target) == TEXT) if conditions else ""

    def _search(self, target: str, query: np.ndarray, k: int, conditions: Conditions) -> list[Hit]:
        found = self.client.search(
            target,
            data=[query],
            anns_field="vector",
            limit=k,
            filter=self._filter(target, conditions),
            output_fields=["id", "text", "metadata"],
            search_params=self._search_params(k, bool(conditions)),
            consistency_level=self.owner.level(target),
            timeout=self.timeout,
        )[0]
        return [
            Hit(h["entity"]["id"], float(h["distance"]), h["entity"]["text"], h["entity"]["metadata"]) for h in found
        ]

    def _count(self, target: str, conditions: Conditions) -> int:
        return int(self.owner.query(target, self._filter(target, conditions), ["count(*)"])[0]["count(*)"])

    def reembed(
        self,
        embed: Callable[[list[str]], np.ndarray],
        model: str,
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any]:
        """Into a new items collection, then one catalog write switches to it (reembed.py)."""
        from service.index.engines.milvus.reembed import reembed

        return reembed(self, embed, model, batch_size, progress, cancelled)

    def pages(self, target: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """Every row of an items collection, READ_BATCH at a time (query_iterator), Strong."""
        self.owner.barrier(target, STRONG)
        pages_of = self.client.query_iterator(
            target,
            batch_size=READ_BATCH,
            filter="",
            output_fields=fields,
            consistency_level=STRONG,
            timeout=self.timeout,
        )
        try:
            while page := pages_of.next():
                yield page
        finally:
            pages_of.close()

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """Every item read back in pages (query_iterator), in the order of their last write."""
        ids: list[str] = []
        seqs: list[int] = []
        pages: list[np.ndarray] = []
        with self.owner.errors(self.name):
            target = self._items()
            if target is not None:
                for page in self.pages(target, ["id", "seq", "vector"]):
                    ids += [r["id"] for r in page]
                    seqs += [r["seq"] for r in page]
                    pages.append(np.asarray([r["vector"] for r in page], dtype=np.float32))
        order = sorted(range(len(ids)), key=lambda i: (seqs[i], ids[i]))
        vectors = np.concatenate(pages) if pages else np.empty((0, self.dim or 0), np.float32)
        return [ids[i] for i in order], vectors[order]

    def items(self, ids: Sequence[str], with_vectors: bool = False) -> list[Item | None]:
        wanted = [i for i in dict.fromkeys(ids) if valid_id(i)]
        found: dict[str, Item] = {}
        with self.owner.errors(self.name):
            target = self._items()
            if target is not None:
                for chunk in _chunks(wanted, 512):
                    rows = self.owner.query(target, pk_filter(chunk), self._fields(with_vectors))
                    found.update((r["id"], _item(r, with_vectors)) for r in rows)
        return [found.get(i) for i in ids]


def _item(row: dict[str, Any], with_vector: bool) -> Item:
    vector = np.asarray(row["vector"], dtype=np.float32) if with_vector else None
    return Item(row["id"], row["text"], row["metadata"], GIVEN in row["tags"], vector)
