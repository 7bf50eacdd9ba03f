"""One connection to a Milvus database (a server, Zilliz Cloud or Milvus Lite's `.db` file) through `MilvusClient`:
its failures as the collection errors the API answers, the consistency each read asks for, and the creation,
loading and reading of Milvus collections.

Consistency is chosen per operation (`level`): reads of a collection this process wrote are Session (they wait
for this process' last write, read-your-writes), other reads Bounded (they see every write older than the
server's `common.gracefulTime`, 5 s by default, and in practice whatever the server consumed, a time tick or so
after the write); only listing the collections, a catalog miss, backups and re-embedding read Strong.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from service.index.engines.milvus import lite
from service.index.errors import InvalidRequest, StoreUnavailable
from service.uris import masked

log = logging.getLogger(__name__)

STRONG, SESSION, BOUNDED = "Strong", "Session", "Bounded"
INVERTED_ARRAYS = (2, 4)
"""The first Milvus server version with an INVERTED index on ARRAY fields (2.3 refuses to index an array)."""
LOAD_S = 60.0
"""Limit of loading a collection (once per collection and process): a server takes seconds even for an empty one
(2.5-4 s on the embedded 2.3 server), longer than a call's limit may be."""
READ_BATCH = 4_096
COLLECTION_NOT_FOUND = 100
INVALID_PARAMETER = 1100


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


class Connection:
    """The client of one Milvus database and what this process knows of its collections (loaded, written)."""

    def __init__(self, uri: str, token: str | None = None, db: str | None = None, timeout: float = 10.0) -> None:
        self.uri = uri
        self.lite = lite.is_lite(uri)
        self.timeout = timeout
        self._loaded: set[str] = set()
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
        self.inverted_arrays = not self.lite and not (self.version and self.version < INVERTED_ARRAYS)
        """Whether `tags` gets an INVERTED index (a server of 2.4 or later)."""

    @contextmanager
    def errors(self, missing: Callable[[Exception], None] | None = None) -> Iterator[None]:
        """Milvus' failures as StoreUnavailable (503, try again); a missing collection is first handed to
        `missing`, which may raise what it means instead (NotFound: dropped meanwhile)."""
        import grpc

        try:
            yield
        except self.pymilvus.MilvusException as exc:
            if exc.code == COLLECTION_NOT_FOUND and missing is not None:
                missing(exc)
            log.warning("Milvus call failed: %s", masked(str(exc)))
            raise StoreUnavailable(f"the vector store did not answer: {exc.message}") from exc
        except grpc.RpcError as exc:  # pymilvus lets some through as they are (a deadline, a server gone)
            log.warning("Milvus call failed: %s", masked(str(exc)))
            raise StoreUnavailable(f"the vector store did not answer: {exc.code().name}") from exc

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

    def loaded(self, collection: str) -> str:
        """Load a collection once per process: Milvus Lite forgets what was loaded when its process ends (a
        cluster keeps it), and searches and queries need it loaded. Loading a loaded collection changes nothing."""
        if collection not in self._loaded:
            self.client.load_collection(collection, timeout=max(self.timeout, LOAD_S))
            self._loaded.add(collection)
        return collection

    def create(
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
        self.loaded(collection)

    def fields(self, collection: str) -> set[str]:
        return {f["name"] for f in self.client.describe_collection(collection, timeout=self.timeout)["fields"]}

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

    def pages(self, collection: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """Every row of a collection, READ_BATCH at a time (query_iterator), Strong."""
        self.barrier(collection, STRONG)
        pages_of = self.client.query_iterator(
            collection,
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

    def drop(self, collection: str) -> None:
        self.client.drop_collection(collection, timeout=self.timeout)
        self._loaded.discard(collection)
        self._written.pop(collection, None)

    def close(self) -> None:
        """Close the connection; the last user of a Milvus Lite file also stops its in-process server, which
        closes (and fsyncs) its write-ahead log and lets another process open the file."""
        self.client.close()
        if self.lite:
            lite.closed(self.uri)
