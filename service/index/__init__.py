"""Collections of embedded items: search with exact-match filters, kNN classify and k-means clusters, on two engines.

Modules: base (`VectorCollection` and `CollectionRegistry`, the interface every caller uses, search-time parameters
included, and the shared request checks), registry (`open_collections`: the registry of the engine the settings
name), errors, metadata (filters), names, fingerprint (the model a collection is pinned to), classify, cluster,
calibrate, loader (bulk load), backup and commands (`o2v index ...`). One package per engine under engines/:
- engines/faiss: embedded, the default: registry (`FaissCollections`), collection (`FaissCollection`, SQLite store
  + FAISS index in step), store (SQLite), vector_index (FAISS kinds), snapshot;
- engines/milvus (`O2V_VECTOR_STORE=milvus`): engine (`MilvusCollections`, `MilvusCollection`), expressions (the
  filter expressions, free of caller text) and lite (the Milvus Lite server of a local .db file).
Nothing is imported here, so `o2v` starts without loading FAISS (or pymilvus, which only the Milvus engine imports).
"""
