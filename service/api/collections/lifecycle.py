"""Collection routes: create, list, info, re-embed and drop."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from service.api.collections.routing import WRITE, CollectionRouter, Name, answer, call, links
from service.api.deps import (
    CollectionsDep,
    EmbedderDep,
    ServicesDep,
    get_reembed_jobs,
    model_embedder,
    served_fingerprint,
)
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.jobs import ReembedJobs
from service.api.schemas.collections import CollectionInfo, CollectionList, CreateRequest, ReembedRequest, ReembedStatus
from service.index.base import CollectionRegistry
from service.index.classify import set_min_score
from service.index.errors import CollectionError
from service.index.fingerprint import model_fingerprint

log = logging.getLogger(__name__)
router = CollectionRouter()
ReembedJobsDep = Annotated[ReembedJobs, Depends(get_reembed_jobs)]
REEMBED_ERRORS = (*BODY_ERRORS, 401, 404, 409)
REEMBED_LINKS = links(("202",), "collection_info")
CREATED_LINKS = links(
    ("200", "201"),
    "upsert_items",
    "collection_info",
    "drop_collection",
    "reembed_collection",
    "get_items",
    "scroll_items",
    "count_items",
    "search_batch",
    "search",
    "classify_text",
)


@router.put(
    "/collections/{name}",
    response_model=CollectionInfo,
    dependencies=WRITE,
    responses={201: {"model": CollectionInfo, "description": "created"}, **responses(400, 401, 409, 422)},
    openapi_extra=CREATED_LINKS,
)
async def create_collection(name: Name, collections: CollectionsDep, body: CreateRequest | None = None) -> Response:
    """Create the collection, or return it when it exists with the settings asked for (409 when not)."""
    asked = body or CreateRequest()
    params = asked.model_dump(exclude_none=True, exclude={"index", "min_score"})
    collection, created = await call(collections.create, name, asked.index, params)
    if asked.min_score is not None:
        await call(set_min_score, collection, asked.min_score)
    return answer(CollectionInfo.model_validate(await call(collection.info)), status=201 if created else 200)


def infos(collections: CollectionRegistry) -> dict[str, list[dict[str, Any]]]:
    """Every collection's info; one dropped meanwhile is left out, and one refused on open (Unusable: damaged,
    or settings the engine cannot run) is listed under `broken` with why, so it never hides the others."""
    out: dict[str, list[dict[str, Any]]] = {"collections": [], "broken": []}
    for name in collections.names():
        try:
            out["collections"].append(collections.get(name).info())
        except CollectionError as exc:
            if exc.status not in (404, 409):
                raise
            if exc.status == 409:
                out["broken"].append({"name": name, "message": exc.message})
            log.warning("collection %r left out of the list: %s", name, exc.message)
    return out


@router.get("/collections", response_model=CollectionList)
async def list_collections(collections: CollectionsDep) -> Response:
    return answer(CollectionList.model_validate(await call(infos, collections)))


@router.operation("GET", "/collections/{name}", CollectionInfo, 404, 422)
async def collection_info(name: Name, collections: CollectionsDep, jobs: ReembedJobsDep) -> Response:
    """Count, dimension, index, the model fingerprint, and the progress of a re-embedding started here."""
    collection = await call(collections.get, name)
    job = jobs.status(name)  # before the info: a job says "done" only after its switch and min_score are stored
    info = await call(collection.info)
    return answer(CollectionInfo.model_validate({**info, "reembed": job} if job is not None else info))


@router.operation(
    "POST",
    "/collections/{name}/reembed",
    ReembedStatus,
    *REEMBED_ERRORS,
    write=True,
    status_code=202,
    openapi_extra=REEMBED_LINKS,
)
async def reembed_collection(
    name: Name,
    request: Request,
    collections: CollectionsDep,
    embedder: EmbedderDep,
    jobs: ReembedJobsDep,
    body: ReembedRequest | None = None,
) -> Response:
    """Embed every stored text again with the served model, or with `model` of GET /v1/models, in the
    background; the collection switches to the new vectors in one step at the end and answers from the old ones
    until then; from then on its searches and classifications embed their texts with that model. With
    `adopt_min_score`, it then takes the model's calibrated min_score as classify's default. Progress: GET the
    collection."""
    asked = body or ReembedRequest()
    collection = await call(collections.get, name)
    if not collection.reembeds:
        raise ApiError(422, f"the {type(collection).__name__} engine cannot re-embed its collections", "store")
    chosen, fingerprint = embedder.encoder, served_fingerprint(request)
    if asked.model is not None:
        chosen = (await model_embedder(request, asked.model)).encoder
        fingerprint = model_fingerprint(chosen)
    min_score = chosen.model.calibrated_min_score if asked.adopt_min_score else None
    if asked.adopt_min_score and min_score is None:
        model = asked.model or chosen.name
        why = "only an adaptation on data with out-of-scope items calibrates one"
        raise ApiError(422, f"model {model!r} has no calibrated min_score: {why}", "adopt_min_score")
    started = jobs.start(collection, chosen.embed_texts, fingerprint, min_score)
    return answer(ReembedStatus.model_validate(started), status=202)


@router.deletion("/collections/{name}")
async def drop_collection(
    name: Name, collections: CollectionsDep, jobs: ReembedJobsDep, services: ServicesDep
) -> Response:
    await call(collections.drop, name)
    jobs.forget(name)
    services.drift.forget_collection(name)
    return Response(status_code=204)
