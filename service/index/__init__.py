"""Collections of embedded items: search with exact-match filters, kNN classify and k-means clusters, on two engines.

Modules: base (the interface every caller uses, and the shared request checks), registry (`open_collections`, and
the embedded engine's create/get/list/drop), collection (SQLite store + FAISS index in step), store (SQLite),
vector_index (FAISS kinds), snapshot, milvus (the Milvus engine, `O2V_VECTOR_STORE=milvus`), metadata (filters),
classify, cluster, loader (bulk load) and commands (`o2v index ...`).
Nothing is imported here, so `o2v` starts without loading FAISS (or pymilvus, which only the Milvus engine imports).
"""
