"""EmbeddingCache: an LRU of raw embeddings by the token ids they were computed from, bounded in bytes (opt-in,
O2V_EMBED_CACHE_BYTES). Repeated texts (FAQ queries, chatbot utterances, a re-indexed corpus) skip the encoder; the
key is the ids the text becomes after truncation, so the same text cut another way is another entry."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

ENTRY_OVERHEAD = 250
"""Bytes one entry costs besides its key and vector bytes: the bytes and ndarray objects and the dict slot."""


def cache_key(channel: str, row: Sequence[int]) -> bytes:
    return channel.encode() + np.asarray(row, dtype=np.int32).tobytes()


class EmbeddingCache:
    """Not thread-safe: the event loop alone reads and fills it (Embedder.embed_ids)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def cost(key: bytes, vector: np.ndarray) -> int:
        return len(key) + vector.nbytes + ENTRY_OVERHEAD

    def get(self, key: bytes) -> np.ndarray | None:
        vector = self._entries.get(key)
        if vector is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return vector

    def put(self, key: bytes, vector: np.ndarray) -> None:
        """Keep a copy (the caller's array may be a view of a whole batch); the least recently used entries go
        until the total fits. A vector larger than the whole budget is not kept."""
        cost = self.cost(key, vector)
        if cost > self.max_bytes or key in self._entries:
            return
        self._entries[key] = vector.copy()
        self.bytes += cost
        while self.bytes > self.max_bytes:
            old_key, old = self._entries.popitem(last=False)
            self.bytes -= self.cost(old_key, old)
