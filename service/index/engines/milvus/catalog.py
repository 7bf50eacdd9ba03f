"""The catalog (`o2v_collections`): a row per collection, {name, config, dim}.

A collection exists from its PUT, but Milvus fixes a vector field's dimension when it creates the collection, and
the dimension is known only at the first write; so the items' collection is made by the first upsert and `dim`
is 0 until then. `config` holds the index kind and parameters (IndexConfig.public) and the EXTRAS: the model
fingerprint, the attributes, the items collection a re-embedding switched to, and a re-embedding's lease.
"""

from __future__ import annotations

from typing import Any

from service.index.engines.milvus.connection import STRONG, Connection
from service.index.engines.milvus.expressions import name_filter
from service.index.engines.milvus.store import MAX_TOP_K

CATALOG = "o2v_collections"
EXTRAS = ("model", "attributes", "items", "reembedding")
"""Keys of a catalog row's config JSON that are not index settings."""


class Catalog:
    """The catalog rows of one Milvus database."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        if connection.client.has_collection(CATALOG, timeout=connection.timeout):
            connection.loaded(CATALOG)
            return
        types = connection.pymilvus.DataType
        schema = connection.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("name", types.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("config", types.JSON)
        schema.add_field("dim", types.INT64)
        schema.add_field("vector", types.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field; this one is unused
        connection.create(CATALOG, schema, "FLAT", {})

    def row(self, name: str, level: str | None = None) -> dict[str, Any] | None:
        """The row of `name`. A miss is read again Strong, so a collection just made through another replica is
        found; a row found may be a moment old (a drop or re-embedding through another replica then shows as the
        items collection gone)."""
        rows = self.connection.query(CATALOG, name_filter(name), ["config", "dim"], level)
        if not rows and level != STRONG:
            rows = self.connection.query(CATALOG, name_filter(name), ["config", "dim"], STRONG)
        return rows[0] if rows else None

    def write(self, name: str, config: dict[str, Any], dim: int, extras: dict[str, Any] | None = None) -> None:
        """The row of `name`: its config with `extras` set over it (a None extra is stored as null, which every
        reader takes for absent), and its dimension."""
        row = {"name": name, "config": {**config, **(extras or {})}, "dim": dim, "vector": [1.0, 0.0]}
        self.connection.client.upsert(CATALOG, [row], timeout=self.connection.timeout)
        self.connection.wrote(CATALOG)

    def delete(self, name: str) -> None:
        self.connection.client.delete(CATALOG, filter=name_filter(name), timeout=self.connection.timeout)
        self.connection.wrote(CATALOG, delete=True)

    def names(self) -> list[str]:
        rows = self.connection.query(CATALOG, "", ["name"], STRONG, limit=MAX_TOP_K)
        return sorted(r["name"] for r in rows)
