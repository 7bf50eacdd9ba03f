"""Child process of the SIGKILL test: writes batches until killed, printing each batch number once acknowledged.

Batch b upserts items b{b}-0..b{b}-4 (metadata batch=b) and replaces item "hot" (text str(b)), then deletes b{b}-0;
only after both calls return is "b" printed. Usage: python -m tests.index_writer FOLDER KIND [faiss|milvus]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from service.index.engines.faiss.store import Item
from tests.index_fixtures import registry, unit_vectors

BATCH = 5
DIM = 32


def batch_vectors(b: int) -> np.ndarray:
    """BATCH item vectors then the hot item's vector for batch b."""
    return unit_vectors(BATCH + 1, seed=1000 + b, dim=DIM)


def main(folder: str, kind: str, store: str = "faiss") -> None:
    collection, _ = registry(Path(folder), store=store, snapshot_every=40).create("durable", kind)
    b = 0
    while True:
        batch = [Item(f"b{b}-{j}", f"batch {b} item {j}", {"batch": b}) for j in range(BATCH)]
        collection.upsert([*batch, Item("hot", str(b), {"batch": b})], batch_vectors(b))
        collection.delete(f"b{b}-0")
        print(b, flush=True)
        b += 1


if __name__ == "__main__":
    main(*sys.argv[1:4])
