"""`open_collections`: the registry of whichever engine the settings name (`O2V_VECTOR_STORE`)."""

from __future__ import annotations

from service.index.base import CollectionRegistry
from service.index.engines.faiss.registry import FaissCollections
from service.settings import Settings


def open_collections(settings: Settings) -> CollectionRegistry:
    """The registry of the engine `O2V_VECTOR_STORE` names: embedded FAISS + SQLite, or Milvus. The caller passes
    its settings: there is no process-wide fallback, so the app, the CLI and the tests each use their own."""
    if settings.vector_store == "milvus":
        from service.index.engines.milvus.registry import MilvusCollections  # pymilvus is imported only when it is used

        return MilvusCollections.from_settings(settings)
    return FaissCollections.from_settings(settings)
