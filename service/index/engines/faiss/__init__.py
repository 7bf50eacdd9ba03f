"""The embedded engine: SQLite store, FAISS vector index and snapshots kept in step."""
