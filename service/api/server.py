"""Running the app: `serve`, uvicorn in this process for `o2v serve` (plain or as a SageMaker container)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn

from service.api.connections import uvicorn_http
from service.encoders.base import INVOKE_ENDPOINT_MAX_BYTES
from service.settings import Settings

MODEL_FILES = ("encoder.onnx", "hyperparameters.json", "tokenizer.json")  # what `o2v export` writes and serving reads
logger = logging.getLogger("o2v.serve")


def sagemaker_model(path: Path) -> Path | None:
    """The model directory SageMaker unpacked to `path`, or None when it is empty or absent (the baked-in model
    serves, logged). Anything else there stops the start: a SageMaker built-in Object2Vec artifact (model_algo-1, a
    model.tar.gz) cannot be served here, and answering with the baked-in model instead would give 200s with
    embeddings of another vocabulary."""
    found = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if not found:
        logger.warning("%s holds no model: serving the baked-in model", path)
        return None
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if missing:
        listed = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
        raise ValueError(
            f"{path} holds {listed}, not an object2vec-service model directory (missing {', '.join(missing)}). "
            f"Expected what `o2v export` writes ({', '.join(MODEL_FILES)}, scorer.onnx, model_card.json), packed as "
            "the model's model.tar.gz; a model trained by SageMaker's built-in Object2Vec cannot be served by this "
            "image. Create the SageMaker model without model data to serve the baked-in model."
        )
    return path


def serve(overrides: Mapping[str, Any], sagemaker: bool = False) -> int:
    """Serve with the environment's settings plus `overrides`; they travel as O2V_* variables so that every
    uvicorn worker process builds the same Settings. `sagemaker`: what a SageMaker container needs unless
    overridden: 0.0.0.0:8080, InvokeEndpoint's body limit, the model SageMaker unpacks (sagemaker_model)."""
    if sagemaker:
        settings = Settings()
        defaults: dict[str, Any] = {
            "host": "0.0.0.0",
            "port": 8080,
            "max_body_bytes": INVOKE_ENDPOINT_MAX_BYTES,
        }
        if "model_dir" not in overrides:
            unpacked = sagemaker_model(settings.sagemaker.model_dir)
            if unpacked is not None:
                defaults["model_dir"] = unpacked
        overrides = {**defaults, **overrides}
    for name, value in overrides.items():
        os.environ[f"O2V_{name.upper()}"] = str(value)
    settings = Settings()
    refuse_workers_with_drift(settings)
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        access_log=settings.server.access_log,
        http=uvicorn_http(settings),
    )
    return 0


def refuse_workers_with_drift(settings: Settings) -> None:
    """ValueError for O2V_WORKERS > 1 with the drift monitor on. Each worker process holds its own monitor: a
    baseline uploaded to one worker is missing from the others' answers, and is lost when another worker, which never
    saw it, writes the state file last; a clear refusal beats acknowledged writes that vanish."""
    if settings.server.workers > 1 and settings.drift.enabled:
        raise ValueError(
            f"O2V_WORKERS={settings.server.workers} with the drift monitor on: each worker process would keep drift "
            "state of its own, and baselines uploaded to one would be lost. Run one worker per process (scale with "
            "more replicas), or turn the drift monitor off with O2V_DRIFT_ENABLED=false"
        )
