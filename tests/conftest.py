"""Fixtures every test module may use: the collection engine to run a behavioural test on, and a tiny public-data
tree in place of ../shared/data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.index_fixtures import STORES, close_opened
from tests.public_data_fixtures import write_public_data


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each engine in turn: "faiss" (SQLite + FAISS) and "milvus" (Milvus Lite); Milvus registries close after."""
    yield request.param
    close_opened()


@pytest.fixture(scope="session")
def public_data_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in datasets (tests/public_data_fixtures.py), written once a session; treat as read-only."""
    return write_public_data(tmp_path_factory.mktemp("public-data"))


@pytest.fixture
def public_data(public_data_tree: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """O2V_SHARED_DATA pointing at the stand-in datasets, so service.datasets reads them and never ../shared."""
    monkeypatch.setenv("O2V_SHARED_DATA", str(public_data_tree))
    return public_data_tree
