"""Collections of embedded items: durable FAISS search, exact-match filters, kNN classify and k-means clusters.

Modules: registry (create/get/list/drop), collection (store + index in step), store (SQLite), vector_index (FAISS
kinds), snapshot, metadata (filters), classify, cluster, loader (bulk load) and commands (`o2v index ...`).
Nothing is imported here, so `o2v` starts without loading FAISS.
"""
