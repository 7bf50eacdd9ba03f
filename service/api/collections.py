"""Collection routes: create/list/info/drop, batch upsert, delete, search, classify and cluster (service/index).

Thin on purpose: the schemas check limits that depend on settings, texts are embedded by the app's Embedder, and
everything else is a call into service.index run off the event loop (SQLite commits, FAISS searches and Milvus
calls block). The router owns the registry of the engine the settings name (O2V_VECTOR_STORE) through its lifespan,
so shutdown snapshots every FAISS index or closes the Milvus connection.
Scores of text queries go to the drift streams `search_top1` and `classify_confidence`.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, StringConstraints, WithJsonSchema
from starlette.responses import Response

from service.api import limits
from service.api.auth import require_api_key
from service.api.deps import EmbedderDep, observe_scores
from service.api.errors import ApiError, responses
from service.api.render import json_response
from service.encoders.base import Encoder
from service.encoders.embedder import Embedder
from service.index.base import MAX_ID_CHARS, CollectionRegistry, Hit, Item
from service.index.classify import classify
from service.index.cluster import cluster
from service.index.names import NAME_RE
from service.index.registry import open_collections
from service.settings import INDEX_PARAM_MAX, Settings

T = TypeVar("T")
MAX_DIM = 65_536
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
Filter = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}),
    Field(description="exact match on metadata: {key: scalar}"),
]


class CollectionInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    count: int
    dim: int | None = Field(description="set by the first vectors stored")
    index: Literal["flat", "hnsw", "ivf"]


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class Upserted(BaseModel):
    upserted: int


class HitOut(BaseModel):
    id: str
    score: float = Field(description="cosine similarity to the query")
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    hits: list[HitOut]


class ClassifyResponse(BaseModel):
    label: Any = Field(description="the winning label value, or null: out of scope (confidence below min_score)")
    confidence: float = Field(description="Σ cosine of the winner's voters / number of neighbours")
    neighbors: list[HitOut]


class Representative(BaseModel):
    id: str
    text: str


class ClusterOut(BaseModel):
    cluster: int
    size: int
    representatives: list[Representative]


class ClusterResponse(BaseModel):
    clusters: list[ClusterOut]
    assignments: dict[str, int]


def _index_param(name: str, description: str) -> Any:
    """An optional index parameter of a create request, bounded as the engines accept it (INDEX_PARAM_MAX)."""
    return Field(None, description=description, le=INDEX_PARAM_MAX[name])


def get_collections(request: Request) -> CollectionRegistry:
    return request.app.state.collections


CollectionsDep = Annotated[CollectionRegistry, Depends(get_collections)]
Name = Annotated[str, Path(pattern=f"^{NAME_RE.pattern}$", description="collection name")]


async def _call(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking service.index call in a worker thread; its CollectionErrors reach the shared handler."""
    return await asyncio.to_thread(fn, *args)


def _hit(hit: Hit) -> dict[str, Any]:
    return {"id": hit.id, "score": hit.score, "text": hit.text, "metadata": hit.metadata}


def text_or_vector(text_field: str, combine: str = "oneOf") -> dict[str, Any]:
    """JSON schema: the object has a (non-null) text field or `vector`; with oneOf, not both. Routes check it too."""
    text = {"required": [text_field], "properties": {text_field: {"type": "string"}}}
    vector = {"required": ["vector"], "properties": {"vector": {"type": "array"}}}
    return {combine: [text, vector]}


def _one_of(text: str | None, vector: list[float] | None, field: str) -> None:
    if (text is None) == (vector is None):
        raise ApiError(422, f"give exactly one of {field} (a text) and vector", field)


async def _query_vector(embedder: Embedder, text: str | None, given: list[float] | None) -> np.ndarray:
    if text is not None:
        return (await embedder.embed([text]))[0]
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, which service.index refuses by field
        return np.asarray(given, dtype=np.float32)


async def _item_vectors(items: Sequence[Any], embedder: Embedder) -> np.ndarray:
    """Given vectors as they are, other items' texts embedded; one width for all (the model's if any is embedded)."""
    to_embed = [i for i, item in enumerate(items) if item.vector is None]
    width = embedder.dim if to_embed else len(items[0].vector)
    vectors = np.empty((len(items), width), dtype=np.float32)
    for i, item in enumerate(items):
        if item.vector is None and item.text is None:
            raise ApiError(422, "an item needs a text, a vector, or both", f"items[{i}].text")
        if item.vector is not None:
            if len(item.vector) != width:
                message = f"vector has {len(item.vector)} numbers; this request's vectors have {width}"
                raise ApiError(422, message, f"items[{i}].vector")
            with np.errstate(over="ignore"):  # as in _query_vector
                vectors[i] = item.vector
    if to_embed:
        vectors[to_embed] = await embedder.embed([items[i].text for i in to_embed])
    return vectors


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    Text = limits.text(settings)
    Numbers = Annotated[list[float], Field(min_length=1, max_length=MAX_DIM)]
    TopK = Annotated[int, Field(ge=1, le=settings.max_top_k)]

    class CreateRequest(BaseModel):
        """Index kind and parameters; those left out take the server's defaults (O2V_HNSW_*, O2V_IVF_*)."""

        model_config = ConfigDict(extra="forbid")
        index: Literal["flat", "hnsw", "ivf"] | None = None
        m: PositiveInt | None = _index_param("m", "hnsw: graph neighbours per node")
        ef_construction: PositiveInt | None = _index_param("ef_construction", "hnsw: build-time beam")
        ef_search: PositiveInt | None = _index_param("ef_search", "hnsw: query-time beam")
        nlist: PositiveInt | None = _index_param("nlist", "ivf: inverted lists")
        nprobe: PositiveInt | None = _index_param("nprobe", "ivf: lists scanned per query")
        min_train: PositiveInt | None = _index_param("min_train", "ivf: vectors stored before it trains")

    class ItemIn(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra=text_or_vector("text", "anyOf"))
        id: ItemId
        text: Text | None = None
        metadata: dict[str, Any] = Field(default_factory=dict)
        vector: Numbers | None = Field(None, description="a precomputed embedding; the text is then not embedded")

    class UpsertRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: Annotated[list[ItemIn], Field(min_length=1, max_length=settings.max_batch_size)]

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra=text_or_vector("query"))
        query: Text | None = None
        vector: Numbers | None = None
        top_k: TopK = 10
        filter: Filter | None = None

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra=text_or_vector("text"))
        text: Text | None = None
        vector: Numbers | None = None
        label_key: Annotated[str, StringConstraints(min_length=1, max_length=256)] = "label"
        k: TopK = 10
        min_score: float | None = Field(
            None, description=f"default {settings.classify_min_score} (O2V_CLASSIFY_MIN_SCORE)"
        )

    class ClusterRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        k: Annotated[int, Field(ge=1, le=settings.max_clusters)]
        seed: int = 1234
        representatives: Annotated[int, Field(ge=0, le=100)] = 3

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.collections = await asyncio.to_thread(open_collections, settings)
        try:
            yield
        finally:
            await asyncio.to_thread(app.state.collections.close)

    router = APIRouter(tags=["collections"], lifespan=lifespan)
    write = [Depends(require_api_key)]

    @router.put(
        "/collections/{name}",
        response_model=CollectionInfo,
        dependencies=write,
        responses={201: {"model": CollectionInfo, "description": "created"}, **responses(400, 401, 409, 422)},
    )
    async def create_collection(name: Name, collections: CollectionsDep, body: CreateRequest | None = None) -> Response:
        """Create the collection, or return it when it exists with the settings asked for (409 when not)."""
        asked = body or CreateRequest()
        params = asked.model_dump(exclude_none=True, exclude={"index"})
        collection, created = await _call(collections.create, name, asked.index, params)
        return json_response(await _call(collection.info), status=201 if created else 200)

    @router.get("/collections", response_model=CollectionList)
    async def list_collections(collections: CollectionsDep) -> Response:
        infos = [await _call(lambda n=n: collections.get(n).info()) for n in collections.names()]
        return json_response({"collections": infos})

    @router.get("/collections/{name}", response_model=CollectionInfo, responses=responses(404, 422))
    async def collection_info(name: Name, collections: CollectionsDep) -> Response:
        collection = await _call(collections.get, name)
        return json_response(await _call(collection.info))

    @router.delete("/collections/{name}", status_code=204, dependencies=write, responses=responses(401, 404, 422))
    async def drop_collection(name: Name, collections: CollectionsDep) -> Response:
        await _call(collections.drop, name)
        return Response(status_code=204)

    @router.post(
        "/collections/{name}/items",
        response_model=Upserted,
        dependencies=write,
        responses=responses(400, 401, 404, 413, 422, 503),
    )
    async def upsert_items(
        name: Name,
        body: UpsertRequest,
        collections: CollectionsDep,
        embedder: EmbedderDep,
    ) -> Response:
        """Insert or replace items by id; texts without a vector are embedded. Answered only once durable."""
        collection = await _call(collections.get, name)
        vectors = await _item_vectors(body.items, embedder)
        items = [Item(item.id, item.text or "", item.metadata) for item in body.items]
        return json_response({"upserted": await _call(collection.upsert, items, vectors)})

    @router.delete(
        "/collections/{name}/items/{item_id:path}",
        status_code=204,
        dependencies=write,
        responses=responses(401, 404, 422),
    )
    async def delete_item(name: Name, item_id: str, collections: CollectionsDep) -> Response:
        collection = await _call(collections.get, name)
        if not await _call(collection.delete, item_id):
            raise ApiError(404, f"no item {item_id!r} in collection {name!r}", "item_id")
        return Response(status_code=204)

    @router.post("/collections/{name}/search", response_model=SearchResponse, responses=responses(400, 404, 422, 503))
    async def search(
        name: Name,
        body: SearchRequest,
        request: Request,
        collections: CollectionsDep,
        embedder: EmbedderDep,
    ) -> Response:
        """Nearest items by cosine to a text (embedded here) or a vector, optionally among exact metadata matches."""
        _one_of(body.query, body.vector, "query")
        collection = await _call(collections.get, name)
        query = await _query_vector(embedder, body.query, body.vector)
        hits = await _call(collection.search, query, body.top_k, body.filter)
        if body.query is not None and hits:
            observe_scores(request, "search_top1", [hits[0].score])
        return json_response({"hits": [_hit(h) for h in hits]})

    @router.post(
        "/collections/{name}/classify", response_model=ClassifyResponse, responses=responses(400, 404, 422, 503)
    )
    async def classify_text(
        name: Name,
        body: ClassifyRequest,
        request: Request,
        collections: CollectionsDep,
        embedder: EmbedderDep,
    ) -> Response:
        """kNN vote over items having `label_key`; label null when the winner's support is below min_score."""
        _one_of(body.text, body.vector, "text")
        collection = await _call(collections.get, name)
        query = await _query_vector(embedder, body.text, body.vector)
        min_score = settings.classify_min_score if body.min_score is None else body.min_score
        result = await _call(classify, collection, query, body.label_key, body.k, min_score)
        if body.text is not None:
            observe_scores(request, "classify_confidence", [result.confidence])
        neighbors = [_hit(h) for h in result.neighbors]
        return json_response({"label": result.label, "confidence": result.confidence, "neighbors": neighbors})

    @router.post("/collections/{name}/cluster", response_model=ClusterResponse, responses=responses(400, 404, 422))
    async def cluster_items(name: Name, body: ClusterRequest, collections: CollectionsDep) -> Response:
        """Spherical k-means with a seed (same seed, same items → same answer); clusters largest first."""
        collection = await _call(collections.get, name)
        result = await _call(cluster, collection, body.k, body.seed, body.representatives)
        clusters = [
            {
                "cluster": c.cluster,
                "size": c.size,
                "representatives": [{"id": r.id, "text": r.text} for r in c.representatives],
            }
            for c in result.clusters
        ]
        return json_response({"clusters": clusters, "assignments": result.assignments})

    return router
