"""The embedded engine: its registry, SQLite store, FAISS vector index and snapshots kept in step."""
