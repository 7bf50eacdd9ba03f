"""What the gateway tests share: the bundled model's ONNX encoder (loaded once), settings and app clients."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.drift.sink import NullDriftSink
from service.encoders.base import Encoder
from service.encoders.onnx import OnnxEncoder
from service.model.model_dir import ModelDir
from service.settings import DEFAULT_MODEL_DIR, Settings

TEXTS = [
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "Two dogs run through a snowy field.",
    "The stock market fell sharply on Monday after the announcement of new tariffs on imported steel.",
    "ok",
]


@lru_cache(maxsize=1)
def onnx_encoder() -> OnnxEncoder:
    """The bundled model, one thread per session so tests leave the second core to whatever else runs."""
    return OnnxEncoder(ModelDir.load(DEFAULT_MODEL_DIR), intra_op_threads=1)


@contextmanager
def client(encoder: Encoder | None = None, **overrides: Any) -> Iterator[TestClient]:
    """A TestClient on a fresh app (lifespan run: micro-batchers started) around the shared or given encoder,
    with its data directory (collections, drift state) in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="o2v-gateway-") as data_dir:
        app = create_app(Settings(**{"data_dir": data_dir, **overrides}), encoder or onnx_encoder())
        with TestClient(app) as test_client:
            yield test_client


def metric(http: TestClient, name: str) -> float | None:
    """The value of the unlabelled sample `name` on /metrics (None: not exported)."""
    lines = [line for line in http.get("/metrics").text.splitlines() if line.startswith(name + " ")]
    return float(lines[0].split()[1]) if lines else None


def model_copy(tmp: Path, without: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> Path:
    """The bundled model directory as symlinks under tmp, less `without`, plus `extra` {name: link target name}."""
    folder = tmp / "model"
    folder.mkdir()
    for path in DEFAULT_MODEL_DIR.iterdir():
        if path.name not in without:
            os.symlink(path, folder / path.name)
    for name, target in (extra or {}).items():
        os.symlink(DEFAULT_MODEL_DIR / target, folder / name)
    return folder


@contextmanager
def reported_scores(app: FastAPI) -> Iterator[list[tuple[str, list[float]]]]:
    """Every (stream, scores) the app's routes report to its drift sink while the block runs."""
    seen: list[tuple[str, list[float]]] = []

    class Recorder(NullDriftSink):
        def record_many(self, name: str, scores: Iterable[float]) -> int:
            seen.append((name, list(scores)))
            return len(seen[-1][1])

    services = app.state.services
    reported, services.drift = services.drift, Recorder()
    try:
        yield seen
    finally:
        services.drift = reported
