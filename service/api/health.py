"""Operations routes: GET /healthz (alive), /readyz (model loaded, backend answering), /metrics, /v1/models."""

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from service.api.deps import EmbedderDep
from service.api.errors import ApiError, responses
from service.api.render import json_response
from service.encoders.base import Encoder, EncoderError
from service.settings import Settings


class Health(BaseModel):
    status: Literal["ok", "ready"]
    model: str | None = None
    backend: str | None = None


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    dim: int
    max_seq_len: int
    backend: str
    output_layer: str
    scorer: bool
    metrics: dict[str, Any]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


def _created(card: dict[str, Any]) -> int:
    try:
        return int(dt.datetime.fromisoformat(str(card.get("created"))).timestamp())
    except ValueError:
        return 0


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["operations"])
    model = encoder.model
    info = {
        "id": encoder.name,
        "object": "model",
        "created": _created(model.card),
        "owned_by": "object2vec-service",
        "dim": encoder.dim,
        "max_seq_len": model.max_seq_len("in0"),
        "backend": encoder.backend,
        "output_layer": model.hp.output_layer,
        "scorer": encoder.has_scorer,
        "metrics": model.card.get("metrics", {}),
    }

    @router.get("/healthz", response_model=Health)
    async def healthz() -> Response:
        """Liveness: the process answers."""
        return json_response({"status": "ok"})

    @router.get("/readyz", response_model=Health, responses=responses(503))
    async def readyz(embedder: EmbedderDep) -> Response:
        """Readiness: one token goes through the encoder (for SageMaker: a real call to the endpoint)."""
        try:
            await embedder.check()
        except EncoderError as exc:
            raise ApiError(503, f"not ready: {exc.message}") from exc
        return json_response({"status": "ready", "model": embedder.name, "backend": encoder.backend})

    @router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics(request: Request) -> Response:
        """Prometheus text format."""
        return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @router.get("/v1/models", response_model=ModelList)
    async def list_models() -> Response:
        """The one model served, OpenAI's list shape plus its dimensions, backend and validation metrics."""
        return json_response({"object": "list", "data": [info]})

    return router
