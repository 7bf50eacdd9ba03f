"""Collections of embedded items: search with exact-match filters, kNN classify and k-means clusters, on two engines.

Modules: base (`VectorCollection` and `CollectionRegistry`, the interface every caller uses, search-time parameters
included, and the shared request checks), config (the index kinds, their parameters and bounds, `IndexConfig`),
registry (`open_collections`: the registry of the engine the settings name), errors, metadata (filters), names,
fingerprint (the model a collection is pinned to), classify, cluster, calibrate, loader (bulk load), backup and
commands (`o2v index ...`). One package per engine under engines/, laid out alike:
- engines/faiss: embedded, the default: registry (`FaissCollections`), collection (`FaissCollection`), store
  (SQLite, the truth), mirror (the FAISS index kept in step with it), vector_index (FAISS kinds), search (filtered
  neighbours), reembed, snapshot;
- engines/milvus (`O2V_VECTOR_STORE=milvus`): registry (`MilvusCollections`), collection (`MilvusCollection`), store
  (the items collection: schema, rows, index parameters), catalog, connection (client, errors, consistency), locks,
  reembed, backup, expressions (the filter expressions, free of caller text), lite (the Milvus Lite server of a
  local .db file) and embedded (a Milvus Standalone server for tests and benchmarks).
Nothing is imported here, so `o2v` starts without loading FAISS (or pymilvus, which only the Milvus engine imports).
"""
