"""The model registry over HTTP: GET /v1/models and /v1/models/{id} (OpenAI's shapes, plus kind, default, parent and
evaluation), keyed POST /models/{name}/promote (the default model, switched atomically: requests in flight finish
on the model they started with; rollback is promoting the `previous` one the answer names) and DELETE /models/{name}.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from service.api.auth import require_api_key
from service.api.errors import ApiError, responses
from service.api.render import json_response
from service.model.registry import (
    ModelConflict,
    ModelEntry,
    ModelNameError,
    ModelRegistry,
    UnknownModel,
    openai_model,
)


def model_error(exc: Exception, field: str = "model") -> ApiError:
    """The registry's refusals as HTTP answers: 404 model_not_found, 422 for a bad name, 409 for a conflict."""
    if isinstance(exc, UnknownModel):
        return ApiError(404, str(exc), field=field, type="model_not_found")
    if isinstance(exc, ModelNameError):
        return ApiError(422, str(exc), field=field, type="validation_error")
    return ApiError(409, str(exc), field=field, type="conflict")


def registry_of(request: Request) -> ModelRegistry:
    return request.app.state.model_registry


def describe(request: Request, entry: ModelEntry, default: str) -> dict[str, Any]:
    """openai_model, with the configured model's facts taken from the encoder that serves it (a SageMaker endpoint
    has no model directory of its own here)."""
    out = openai_model(entry, default)
    if entry.kind == "configured":
        encoder = request.app.state.encoder
        model = encoder.model
        out.update(
            dim=encoder.dim,
            max_seq_len=model.max_seq_len("in0"),
            backend=encoder.backend,
            output_layer=model.hp.output_layer,
            scorer=encoder.has_scorer,
            metrics=model.card.get("metrics", {}),
        )
    return out


router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    """Every model of the registry: the configured one and the adapted ones, the default marked."""
    registry = registry_of(request)
    default = registry.default()
    entries = await asyncio.to_thread(registry.entries)
    return json_response({"object": "list", "data": [describe(request, e, default) for e in entries]})


@router.get("/v1/models/{model_id}", responses=responses(404))
async def get_model(model_id: str, request: Request) -> Response:
    """One model, OpenAI's shape; an adapted one adds its parent and its evaluation against it."""
    registry = registry_of(request)
    try:
        entry = registry.get(model_id)
    except UnknownModel as exc:
        raise model_error(exc) from None
    return json_response(describe(request, entry, registry.default()))


@router.post("/models/{name}/promote", dependencies=[Depends(require_api_key)], responses=responses(404, 409))
async def promote(name: str, request: Request) -> Response:
    """Make `name` the default model: it is loaded first, then the switch is one atomic file replace."""
    pool = request.app.state.models
    try:
        await pool.get(name)  # loads it: a model that cannot load is refused before it becomes the default
        state = await asyncio.to_thread(registry_of(request).promote, name)
    except (UnknownModel, ModelNameError, ModelConflict) as exc:
        raise model_error(exc) from None
    return json_response(state)


@router.delete("/models/{name}", dependencies=[Depends(require_api_key)], responses=responses(404, 409))
async def remove(name: str, request: Request) -> Response:
    """Remove an adapted model that is not the default."""
    try:
        await asyncio.to_thread(registry_of(request).remove, name)
    except (UnknownModel, ModelNameError, ModelConflict) as exc:
        raise model_error(exc) from None
    request.app.state.models.unload(name)
    return Response(status_code=204)
