"""Fixtures every test module may use: the collection engine to run a behavioural test on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.index_fixtures import STORES, close_opened


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each engine in turn: "faiss" (SQLite + FAISS) and "milvus" (Milvus Lite); Milvus registries close after."""
    yield request.param
    close_opened()
