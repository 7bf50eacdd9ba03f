"""The model registry over HTTP: GET /v1/models and /v1/models/{id} (OpenAI's shapes, plus kind, default, parent and
evaluation), keyed POST /models/{name}/promote (the default model, switched atomically: requests in flight finish
on the model they started with; rollback is promoting the `previous` one the answer names) and DELETE /models/{name}.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse
from starlette.convertors import StringConvertor, register_url_convertor

from service.api.auth import require_api_key
from service.api.deps import ServicesDep
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.render import json_response
from service.api.schemas.models import AdaptBody
from service.api.services import Services
from service.model.adaptation import REPORT, AdaptRequest, TrainingUnavailable, check_train_extra
from service.model.jobs import JobConflict, UnknownJob
from service.model.labelled import LabelError, Labelled, check_labelled, labelled_items, pair_rows
from service.model.registry import (
    RESERVED_NAMES,
    ModelConflict,
    ModelEntry,
    ModelNameError,
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


def describe(services: Services, entry: ModelEntry, default: str) -> dict[str, Any]:
    """openai_model, with the configured model's facts taken from the encoder that serves it (a SageMaker endpoint
    has no model directory of its own here)."""
    out = openai_model(entry, default)
    if entry.kind == "configured":
        encoder = services.encoder
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


def conflict(why: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """responses(*statuses) with the 409 saying which conflicts the route answers."""
    return {**responses(*statuses), 409: {**responses(409)[409], "description": why}}


class ModelSegment(StringConvertor):
    """A path segment other than a reserved name: `DELETE /models/{name:model}` does not match /models/adapt, whose
    OPTIONS then lists POST alone and whose DELETE is a 405."""

    regex = f"(?!(?:{'|'.join(sorted(RESERVED_NAMES))})$)[^/]+"


register_url_convertor("model", ModelSegment())
router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(services: ServicesDep) -> Response:
    """Every model of the registry: the configured one and the adapted ones, the default marked."""
    registry = services.model_registry
    default = registry.default()
    entries = await asyncio.to_thread(registry.entries)
    return json_response({"object": "list", "data": [describe(services, e, default) for e in entries]})


@router.get("/v1/models/{model_id:path}", responses=responses(404))
async def get_model(model_id: str, services: ServicesDep) -> Response:
    """One model, OpenAI's shape (models.retrieve); an adapted one adds its parent and its evaluation against it. A
    name of O2V_MODEL_ALIASES is the default model, answered under the name asked."""
    registry = services.model_registry
    alias = model_id in services.settings.model_aliases
    try:
        entry = registry.get(registry.default() if alias else model_id)
    except UnknownModel as exc:
        raise model_error(exc) from None
    return json_response({**describe(services, entry, registry.default()), **({"id": model_id} if alias else {})})


@router.post(
    "/models/{name}/promote",
    dependencies=[Depends(require_api_key)],
    responses=conflict("the model's adaptation job did not succeed (failed or cancelled)", 401, 404),
)
async def promote(name: str, services: ServicesDep) -> Response:
    """Make `name` the default model: it is loaded first, then the switch is one atomic file replace."""
    registry = services.model_registry
    failed = services.adapt_jobs.failed_model(name)
    if failed is not None and name not in {e.name for e in registry.entries()}:
        raise ApiError(409, f"model {name!r} was not written: its job {failed} did not succeed", "name", "conflict")
    try:
        await services.models.get(name)  # loads it: a model that cannot load is refused before it becomes the default
        state = await asyncio.to_thread(registry.promote, name)
    except (UnknownModel, ModelNameError, ModelConflict) as exc:
        raise model_error(exc) from None
    await services.default_embedder()  # the drift monitor follows now, not at the next request naming no model
    return json_response(state)


@router.delete("/models/{name:model}", dependencies=[Depends(require_api_key)], responses=responses(401, 404, 409))
async def remove(name: str, services: ServicesDep) -> Response:
    """Remove an adapted model that is not the default."""
    try:
        await asyncio.to_thread(services.model_registry.remove, name)
    except (UnknownModel, ModelNameError, ModelConflict) as exc:
        raise model_error(exc) from None
    services.models.unload(name)
    return Response(status_code=204)


@router.post(
    "/models/adapt",
    status_code=202,
    dependencies=[Depends(require_api_key)],
    responses=conflict(
        "an adaptation job is running (one at a time, not queued), or the name is taken", *BODY_ERRORS, 401, 404, 503
    ),
)
async def adapt(body: AdaptBody, services: ServicesDep) -> Response:
    """Train a new model from the parent on the collection's labelled items, in a niced child process; 202 with the
    job id (GET /jobs/{id}). A second job while one runs is a 409."""
    settings, registry = services.settings, services.model_registry
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
            collection = await asyncio.to_thread(services.require_collections().get, str(body.collection))
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
        tune=body.tune,
    )
    try:
        job_id = await asyncio.to_thread(services.adapt_jobs.submit, adapt_request, out)
    except JobConflict as exc:
        raise ApiError(409, str(exc), field="name", type="conflict") from None
    return json_response({"job": job_id}, status=202)


@router.get("/jobs/{job_id}", responses=responses(404))
async def get_job(job_id: str, services: ServicesDep) -> Response:
    """Status (queued, running, succeeded, failed, cancelled), progress (epoch rows) and, when done, the result."""
    try:
        return json_response(await asyncio.to_thread(services.adapt_jobs.status, job_id))
    except UnknownJob as exc:
        raise ApiError(404, str(exc), field="job", type="not_found") from None


@router.delete("/jobs/{job_id}", dependencies=[Depends(require_api_key)], responses=responses(401, 404))
async def cancel_job(job_id: str, services: ServicesDep) -> Response:
    """Cancel a job: its training process stops now and no model is written."""
    try:
        return json_response(await asyncio.to_thread(services.adapt_jobs.cancel, job_id))
    except UnknownJob as exc:
        raise ApiError(404, str(exc), field="job", type="not_found") from None


REPORT_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the adaptation's HTML report"},
    **responses(404),
}


@router.get("/jobs/{job_id}/report", response_class=Response, responses=REPORT_DOC)
async def job_report(job_id: str, services: ServicesDep) -> Response:
    """The report of a job that succeeded: parent against adapted on the held-out split, per-epoch metrics, the
    tuning trials, lineage (404 while it runs, or when it failed or was cancelled)."""
    try:
        page = await asyncio.to_thread(services.adapt_jobs.report, job_id)
    except UnknownJob as exc:
        raise ApiError(404, str(exc), field="job", type="not_found") from None
    if page is None:
        raise ApiError(404, f"job {job_id} has no report: only a job that succeeded has one", "job", "not_found")
    return HTMLResponse(page)


@router.get("/models/{name}/report", response_class=Response, responses=REPORT_DOC)
async def model_report(name: str, services: ServicesDep) -> Response:
    """The report an adapted model was written with (report.html in its directory); other models have none."""
    try:
        entry = await asyncio.to_thread(services.model_registry.get, name)
    except UnknownModel as exc:
        raise model_error(exc, "name") from None
    path = None if entry.path is None else entry.path / REPORT
    if path is None or not path.is_file():
        raise ApiError(404, f"model {name!r} has no report: only adapted models have one", "name", "not_found")
    return HTMLResponse(await asyncio.to_thread(path.read_text, encoding="utf-8"))
