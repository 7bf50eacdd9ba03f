"""bench.classify_http at a tiny size: a real `o2v serve` on the embedded engine, items upserted and classified
over HTTP, the in-scope accuracy computed from the answers; and its synthetic catalogue where the data is absent."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import bench.classify_http as bench
from service.evaluation import OOS


def test_classifies_the_test_split_over_http(public_data: Path, tmp_path: Path) -> None:
    data = bench.catalogue(items=60, queries=24, seed=0, force_synthetic=False)
    assert data.source.startswith("CLINC150") and len(data.queries) == 24
    assert all(label != OOS for _, label in data.items) and any(label == OOS for _, label in data.queries)
    args = argparse.Namespace(
        stores=["faiss"], workdir=str(tmp_path), index="flat", batch=16, concurrency=2, k=5, rounds=3
    )
    [turn] = bench.run_stores(data, args)
    row = bench.row(turn, data)
    assert row["errors"] == 0 and row["requests"] == 24 and len(turn.latencies) == 24 and len(turn.loads) == 3
    assert all(label is not None for label in turn.labels) and turn.upsert_s > 0 and turn.classify_s > 0
    assert float(row["acc_in_scope"]) >= 0.5  # type: ignore[arg-type]  # six intents: chance is 1/6


def test_synthetic_catalogue_when_the_data_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2V_SHARED_DATA", str(tmp_path / "nothing"))
    data = bench.catalogue(items=300, queries=40, seed=3, force_synthetic=False)
    assert data.source.startswith("synthetic") and len(data.items) == 300 and len(data.queries) == 40
    assert data == bench.catalogue(items=300, queries=40, seed=3, force_synthetic=False)
    assert len({label for _, label in data.items}) == 150
