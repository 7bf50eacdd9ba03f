"""Item routes: batch upsert, delete, and reads by id, page and count."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from service.api.collections.embedding import follow, item_vectors
from service.api.collections.routing import BY_NAME, CollectionRouter, Name, answer, call, links
from service.api.deps import CollectionsDep, EmbedderDep
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

router = CollectionRouter()
BY_FIRST_ITEM = {**BY_NAME, "item_id": "$request.body#/items/0/id"}
READ_ERRORS = (400, 404, 422, 503)
UPSERT_ERRORS = (400, 401, 404, 409, 413, 422, 503)
UPSERTED = links(
    ("200",), "search", "classify_text", "cluster_items", delete_item=BY_FIRST_ITEM, get_item=BY_FIRST_ITEM
)


@router.operation("POST", "/collections/{name}/items", Upserted, *UPSERT_ERRORS, write=True, openapi_extra=UPSERTED)
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
    return answer(Upserted(upserted=await call(collection.upsert, items, vectors, model if embedded else None)))


@router.operation("GET", "/collections/{name}/items/{item_id:path}", ItemOut, 404, 422, 503)
async def get_item(name: Name, item_id: str, collections: CollectionsDep, with_vector: bool = False) -> Response:
    """One item: its text, metadata and where its vector came from; the vector itself with ?with_vector=true."""
    collection = await call(collections.get, name)
    found = (await call(collection.items, [item_id], with_vector))[0]
    if found is None:
        raise NotFound.item(name, item_id)
    return answer(ItemOut.of(found))


@router.operation("POST", "/collections/{name}/get", ItemsResponse, *READ_ERRORS)
async def get_items(name: Name, body: GetItemsRequest, collections: CollectionsDep) -> Response:
    """The items of these ids (at most O2V_MAX_GET_IDS), in the order asked; the ids not stored in `missing`."""
    collection = await call(collections.get, name)
    found = await call(collection.items, body.ids, body.with_vector)
    missing = [i for i, item in zip(body.ids, found, strict=True) if item is None]
    return answer(ItemsResponse(items=[ItemOut.of(i) for i in found if i is not None], missing=missing))


@router.operation("POST", "/collections/{name}/scroll", ScrollResponse, *READ_ERRORS)
async def scroll_items(name: Name, body: ScrollRequest, collections: CollectionsDep) -> Response:
    """Every item, page by page in id order (at most O2V_MAX_SCROLL_LIMIT a page), optionally only exact
    metadata matches. Items written meanwhile after the cursor show up; none is skipped or repeated."""
    collection = await call(collections.get, name)
    found, cursor = await call(collection.page, body.cursor, body.limit, body.filter, body.with_vector)
    return answer(ScrollResponse(items=[ItemOut.of(i) for i in found], next_cursor=cursor))


@router.operation("POST", "/collections/{name}/count", CountResponse, *READ_ERRORS)
async def count_items(name: Name, collections: CollectionsDep, body: CountRequest | None = None) -> Response:
    """Items whose metadata matches the filter exactly; all items without one."""
    collection = await call(collections.get, name)
    return answer(CountResponse(count=await call(collection.count_where, (body or CountRequest()).filter)))


@router.deletion("/collections/{name}/items/{item_id:path}")
async def delete_item(name: Name, item_id: str, collections: CollectionsDep) -> Response:
    collection = await call(collections.get, name)
    if not await call(collection.delete, item_id):
        raise NotFound.item(name, item_id)
    return Response(status_code=204)
