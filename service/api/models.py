"""The model registry over HTTP: GET /v1/models and /v1/models/{id} (OpenAI's shapes, plus kind, default, parent and
evaluation), keyed POST /models/{name}/promote (the default model, switched atomically: requests in flight finish
on the model they started with; rollback is promoting the `previous` one the answer names) and DELETE /models/{name}.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from service.api.auth import require_api_key
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.render import json_response
from service.model.adaptation import AdaptRequest, TrainingUnavailable, check_train_extra
from service.model.jobs import JobConflict, UnknownJob
from service.model.labelled import LabelError, Labelled, check_labelled, labelled_items, pair_rows
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


@router.get("/v1/models/{model_id:path}", responses=responses(404))
async def get_model(model_id: str, request: Request) -> Response:
    """One model, OpenAI's shape (models.retrieve); an adapted one adds its parent and its evaluation against it. A
    name of O2V_MODEL_ALIASES is the default model, answered under the name asked."""
    registry = registry_of(request)
    alias = model_id in request.app.state.settings.model_aliases
    try:
        entry = registry.get(registry.default() if alias else model_id)
    except UnknownModel as exc:
        raise model_error(exc) from None
    return json_response({**describe(request, entry, registry.default()), **({"id": model_id} if alias else {})})


@router.post("/models/{name}/promote", dependencies=[Depends(require_api_key)], responses=responses(401, 404, 409))
async def promote(name: str, request: Request) -> Response:
    """Make `name` the default model: it is loaded first, then the switch is one atomic file replace."""
    pool = request.app.state.models
    failed = request.app.state.adapt_jobs.failed_model(name)
    if failed is not None and name not in {e.name for e in registry_of(request).entries()}:
        raise ApiError(409, f"model {name!r} was not written: its job {failed} did not succeed", "name", "conflict")
    try:
        await pool.get(name)  # loads it: a model that cannot load is refused before it becomes the default
        state = await asyncio.to_thread(registry_of(request).promote, name)
    except (UnknownModel, ModelNameError, ModelConflict) as exc:
        raise model_error(exc) from None
    return json_response(state)


@router.delete("/models/{name}", dependencies=[Depends(require_api_key)], responses=responses(401, 404, 409))
async def remove(name: str, request: Request) -> Response:
    """Remove an adapted model that is not the default."""
    try:
        await asyncio.to_thread(registry_of(request).remove, name)
    except (UnknownModel, ModelNameError, ModelConflict) as exc:
        raise model_error(exc) from None
    request.app.state.models.unload(name)
    return Response(status_code=204)


class AdaptBody(BaseModel):
    """A team's labelled data: a collection whose items carry `label_key`, or Object2Vec pairs as text."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="the new model's name, [A-Za-z0-9_-]{1,64}")
    collection: str | None = Field(None, description="train on this collection's items and their labels")
    label_key: str | None = Field(None, description="the metadata key holding each item's label")
    oos_label: str | None = Field(
        "oos", description="the label of out-of-scope items: never a class, measured as out-of-scope recall"
    )
    parent: str | None = Field(None, description="the model to start from (default: the default model)")
    held_out_fraction: float = Field(0.2, gt=0, lt=1, description="share of each label held out for early stopping")
    hyperparameters: dict[str, str | int | float] = Field(
        default_factory=dict, description="SageMaker Object2Vec hyperparameters over the adaptation defaults"
    )
    pairs: list[tuple[str, str, Annotated[float, Field(ge=0, le=1)]]] | None = Field(
        None, description="Object2Vec pairs as text, [text0, text1, label in [0, 1]], instead of a collection"
    )
    seed: StrictInt = 0


@router.post(
    "/models/adapt",
    status_code=202,
    dependencies=[Depends(require_api_key)],
    responses=responses(*BODY_ERRORS, 401, 404, 409, 503),
)
async def adapt(body: AdaptBody, request: Request) -> Response:
    """Train a new model from the parent on the collection's labelled items, in a niced child process; 202 with the
    job id (GET /jobs/{id}). A second job while one runs is a 409."""
    settings = request.app.state.settings
    registry = registry_of(request)
    try:
        check_train_extra()
    except TrainingUnavailable as exc:
        raise ApiError(503, str(exc), field="name", type="training_unavailable") from None
    if (body.pairs is None) == (body.collection is None or body.label_key is None):
        message = "send either `collection` and `label_key` (the items and their labels) or `pairs`"
        raise ApiError(422, message, "collection")
    try:
        out = registry.target(body.name)
        parent = registry.model_dir(body.parent or registry.default())
    except (UnknownModel, ModelNameError, ModelConflict) as exc:
        raise model_error(exc, "name" if not isinstance(exc, UnknownModel) else "parent") from None
    try:
        if body.pairs is not None:
            if len(body.pairs) > settings.adapt_max_items:
                raise LabelError(f"at most {settings.adapt_max_items} pairs (O2V_ADAPT_MAX_ITEMS)", "pairs")
            pairs = [(a, b, float(y)) for a, b, y in body.pairs]
            data, source = pair_rows(pairs), f"{len(pairs)} pairs"
        else:
            collection = await asyncio.to_thread(request.app.state.collections.get, body.collection)
            limit = settings.adapt_max_items
            data = await asyncio.to_thread(labelled_items, collection, str(body.label_key), body.oos_label, limit)
            source = f"collection {body.collection!r}, label_key {body.label_key!r}"
        check_labelled(data)
    except LabelError as exc:
        raise ApiError(422, str(exc), field="pairs" if body.pairs else exc.field, type="validation_error") from None
    sts = settings.shared_data / "stsbenchmark" / "sts-dev.csv"
    adapt_request = AdaptRequest(
        name=body.name,
        parent=parent.path,
        train=data if body.pairs is None else Labelled([], []),
        pairs=pairs if body.pairs is not None else None,
        held_out_fraction=body.held_out_fraction,
        hyperparameters=dict(body.hyperparameters),
        options={"seed": body.seed, "threads": settings.adapt_threads},
        source=source,
        sts_dev=sts if sts.is_file() else None,
    )
    try:
        job_id = await asyncio.to_thread(request.app.state.adapt_jobs.submit, adapt_request, out)
    except JobConflict as exc:
        raise ApiError(409, str(exc), field="name", type="conflict") from None
    return json_response({"job": job_id}, status=202)


@router.get("/jobs/{job_id}", responses=responses(404))
async def get_job(job_id: str, request: Request) -> Response:
    """Status (queued, running, succeeded, failed, cancelled), progress (epoch rows) and, when done, the result."""
    try:
        return json_response(await asyncio.to_thread(request.app.state.adapt_jobs.status, job_id))
    except UnknownJob as exc:
        raise ApiError(404, str(exc), field="job", type="not_found") from None


@router.delete("/jobs/{job_id}", dependencies=[Depends(require_api_key)], responses=responses(401, 404))
async def cancel_job(job_id: str, request: Request) -> Response:
    """Cancel a job: its training process stops now and no model is written."""
    try:
        return json_response(await asyncio.to_thread(request.app.state.adapt_jobs.cancel, job_id))
    except UnknownJob as exc:
        raise ApiError(404, str(exc), field="job", type="not_found") from None
