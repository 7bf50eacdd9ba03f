"""Item routes: batch upsert, delete, and reads by id, page and count."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api.collections.embedding import follow, item_vectors
from service.api.collections.routing import BY_NAME, WRITE, Name, call, item_out, links
from service.api.deps import CollectionsDep, EmbedderDep
from service.api.errors import responses
from service.api.render import json_response
from service.api.schemas.collections import (
    CountRequest,
    CountResponse,
    GetItemsRequest,
    ItemOut,
    ItemsResponse,
    ScrollRequest,
    ScrollResponse,
    Upserted,
    UpsertRequest,
)
from service.index.base import Item
from service.index.errors import NotFound

router = APIRouter()
BY_FIRST_ITEM = {**BY_NAME, "item_id": "$request.body#/items/0/id"}


@router.post(
    "/collections/{name}/items",
    response_model=Upserted,
    dependencies=WRITE,
    responses=responses(400, 401, 404, 409, 413, 422, 503),
    operation_id="upsert_items",
    openapi_extra=links(
        ("200",),
        search=BY_NAME,
        classify_text=BY_NAME,
        cluster_items=BY_NAME,
        delete_item=BY_FIRST_ITEM,
        get_item=BY_FIRST_ITEM,
    ),
)
async def upsert_items(
    name: Name, body: UpsertRequest, request: Request, collections: CollectionsDep, embedder: EmbedderDep
) -> Response:
    """Insert or replace items by id; texts without a vector are embedded (by the collection's model).
    Answered only once durable."""
    collection = await call(collections.get, name)
    embedded = any(item.vector is None for item in body.items)
    embedder, model = await follow(request, collection, embedder, "" if embedded else None)
    vectors = await item_vectors(body.items, embedder)
    items = [Item(item.id, item.text or "", item.metadata, item.vector is not None) for item in body.items]
    return json_response({"upserted": await call(collection.upsert, items, vectors, model if embedded else None)})


@router.get(
    "/collections/{name}/items/{item_id:path}",
    response_model=ItemOut,
    responses=responses(404, 422, 503),
    operation_id="get_item",
)
async def get_item(name: Name, item_id: str, collections: CollectionsDep, with_vector: bool = False) -> Response:
    """One item: its text, metadata and where its vector came from; the vector itself with ?with_vector=true."""
    collection = await call(collections.get, name)
    found = (await call(collection.items, [item_id], with_vector))[0]
    if found is None:
        raise NotFound.item(name, item_id)
    return json_response(item_out(found))


@router.post(
    "/collections/{name}/get",
    response_model=ItemsResponse,
    responses=responses(400, 404, 422, 503),
    operation_id="get_items",
)
async def get_items(name: Name, body: GetItemsRequest, collections: CollectionsDep) -> Response:
    """The items of these ids (at most O2V_MAX_GET_IDS), in the order asked; the ids not stored in `missing`."""
    collection = await call(collections.get, name)
    found = await call(collection.items, body.ids, body.with_vector)
    missing = [i for i, item in zip(body.ids, found, strict=True) if item is None]
    return json_response({"items": [item_out(i) for i in found if i is not None], "missing": missing})


@router.post(
    "/collections/{name}/scroll",
    response_model=ScrollResponse,
    responses=responses(400, 404, 422, 503),
    operation_id="scroll_items",
)
async def scroll_items(name: Name, body: ScrollRequest, collections: CollectionsDep) -> Response:
    """Every item, page by page in id order (at most O2V_MAX_SCROLL_LIMIT a page), optionally only exact
    metadata matches. Items written meanwhile after the cursor show up; none is skipped or repeated."""
    collection = await call(collections.get, name)
    found, cursor = await call(collection.page, body.cursor, body.limit, body.filter, body.with_vector)
    return json_response({"items": [item_out(i) for i in found], "next_cursor": cursor})


@router.post(
    "/collections/{name}/count",
    response_model=CountResponse,
    responses=responses(400, 404, 422, 503),
    operation_id="count_items",
)
async def count_items(name: Name, collections: CollectionsDep, body: CountRequest | None = None) -> Response:
    """Items whose metadata matches the filter exactly; all items without one."""
    collection = await call(collections.get, name)
    return json_response({"count": await call(collection.count_where, (body or CountRequest()).filter)})


@router.delete(
    "/collections/{name}/items/{item_id:path}",
    status_code=204,
    dependencies=WRITE,
    responses=responses(401, 404, 422),
    operation_id="delete_item",
)
async def delete_item(name: Name, item_id: str, collections: CollectionsDep) -> Response:
    collection = await call(collections.get, name)
    if not await call(collection.delete, item_id):
        raise NotFound.item(name, item_id)
    return Response(status_code=204)
