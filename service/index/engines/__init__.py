"""Engines behind service.index.base: faiss (embedded, FAISS + SQLite) and milvus (scale-out)."""
