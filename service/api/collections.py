"""Collection routes: create/list/info/drop, batch upsert, delete, keyed and paged reads, count, search (one or a
batch), classify and cluster (service/index).

Thin on purpose: the schemas check limits that depend on settings, texts are embedded by the app's Embedder, and
everything else is a call into service.index run off the event loop (SQLite commits, FAISS searches and Milvus
calls block). The router owns the registry of the engine the settings name (O2V_VECTOR_STORE) through its lifespan,
so shutdown snapshots every FAISS index or closes the Milvus connection.
Scores of text queries go to the drift streams `search_top1` and `classify_confidence`.
Every collection is pinned to the model that embedded its texts (service/index/fingerprint.py): a server running
another model answers its text writes and text queries 409, naming both, instead of mixing two embedding spaces.
"""

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from starlette.responses import Response

from service.api import limits
from service.api.auth import require_api_key
from service.api.deps import EmbedderDep, model_embedder, observe_classification, observe_label, observe_scores
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.render import json_response
from service.drift.config import CLASSIFY_REFERENCE_MAX
from service.drift.streams import CLASSIFY_CONFIDENCE, SEARCH_TOP1
from service.encoders.base import Encoder
from service.encoders.embedder import Embedder
from service.index.base import MAX_ID_CHARS, CollectionRegistry, Hit, Item, VectorCollection
from service.index.classify import classify, leave_one_out, set_min_score
from service.index.cluster import SEED_MAX, SEED_MIN, cluster
from service.index.errors import CollectionError, NotFound, raise_if_out_of_files
from service.index.fingerprint import model_fingerprint
from service.index.metadata import canonical
from service.index.names import NAME_RE
from service.index.registry import open_collections
from service.settings import INDEX_PARAM_MAX, INDEX_PARAM_MIN, Settings
from service.strings import Utf8Str, check_utf8
from service.tracing import span

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_DIM = 65_536
ItemId = Annotated[Utf8Str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
"""Every request schema: no unknown fields, no "5" for 5 or true for 1, no NaN or Infinity (Python's json parses
those tokens, and 1e400, into floats)."""


class CollectionInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    count: int
    dim: int | None = Field(description="set by the first vectors stored")
    index: Literal["flat", "hnsw", "ivf", "hnsw_sq8", "ivf_pq"]


class ReembedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="a model of GET /v1/models (default: the served model)")


class ReembedStatus(BaseModel):
    state: Literal["running", "done", "failed"]
    model: str = Field(description="fingerprint of the model embedding the texts")
    done: int
    total: int | None
    error: str | None = None


class BrokenCollection(BaseModel):
    name: str
    message: str = Field(description="why it cannot be opened; its own routes answer 409 with the same")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]
    broken: list[BrokenCollection] = Field(default_factory=list, description="collections that cannot be opened")


class Upserted(BaseModel):
    upserted: int


class ItemOut(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]
    vector_source: Literal["model", "caller"] = Field(
        description="model: embedded from the text by the collection's model; caller: sent with the item"
    )
    vector: list[float] | None = Field(None, description="the stored unit vector, when asked for")


class ItemsResponse(BaseModel):
    items: list[ItemOut] = Field(description="the items found, in the order asked")
    missing: list[str] = Field(description="ids asked for that are not stored")


class ScrollResponse(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None = Field(description="pass it back for the next page; null after the last one")


class CountResponse(BaseModel):
    count: int


class HitOut(BaseModel):
    id: str
    score: float = Field(description="cosine similarity to the query")
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    hits: list[HitOut]


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse] = Field(description="one answer per query, in order")


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
    """An optional index parameter of a create request, bounded as the engines accept it (INDEX_PARAM_MIN/MAX)."""
    return Field(None, description=description, ge=INDEX_PARAM_MIN[name], le=INDEX_PARAM_MAX[name])


def get_collections(request: Request) -> CollectionRegistry:
    return request.app.state.collections


CollectionsDep = Annotated[CollectionRegistry, Depends(get_collections)]
Name = Annotated[str, Path(pattern=f"^{NAME_RE.pattern}$", description="collection name")]
BY_NAME = {"name": "$request.path.name"}


def _links(statuses: tuple[str, ...], **targets: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links from one answer to the operations (by operationId) that can follow it, with the parameters they
    take from this request: clients and stateful testers (schemathesis) chain a created collection into its routes."""
    links = {op: {"operationId": op, "parameters": params} for op, params in targets.items()}
    return {"responses": {status: {"links": links} for status in statuses}}


@contextmanager
def _out_of_files_is_503() -> Iterator[None]:
    """A process out of file descriptors answers 503 (try again) rather than 500; other failures pass."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise_if_out_of_files(exc)
        raise


async def _call(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking service.index call in a worker thread; its CollectionErrors reach the shared handler."""
    with _out_of_files_is_503(), span("index", **{"o2v.operation": getattr(getattr(fn, "func", fn), "__name__", "")}):
        return await asyncio.to_thread(fn, *args)


class HeavyJobs:
    """Requests whose work grows with the collection (k-means) run here, on `slots` threads of their own: never in
    the default pool that readiness, health and embedding share, so those never wait behind them. When every slot
    is busy the next request gets 503 + Retry-After at once (no queue to grow). A job's `cancelled()` turns true
    once its caller has gone or the server stops, and the job stops at its next check."""

    def __init__(self, slots: int, setting: str = "O2V_MAX_HEAVY_JOBS", what: str = "heavy request(s)") -> None:
        self.slots = slots
        self.busy = f"{slots} {what} already running ({setting}); try again later"
        self.running = 0
        """Slots taken; touched on the event loop only. A slot is freed when its thread finishes, not before."""
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="o2v-heavy")
        self._stops: set[threading.Event] = set()

    async def run(self, request: Request, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args, cancelled=…) in a slot; 503 when none is free."""
        if self.running >= self.slots:
            raise ApiError(503, self.busy)
        if await request.is_disconnected():
            raise ApiError(400, "the client went away before the work started")
        stop = threading.Event()
        self.running += 1
        self._stops.add(stop)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, partial(fn, *args, cancelled=stop.is_set))
        future.add_done_callback(lambda _: self._free(stop))
        try:
            with _out_of_files_is_503():
                while True:
                    done, _ = await asyncio.wait({future}, timeout=0.25)
                    if done:
                        return future.result()
                    if await request.is_disconnected():
                        stop.set()
        except asyncio.CancelledError:
            stop.set()
            raise

    def _free(self, stop: threading.Event) -> None:
        self.running -= 1
        self._stops.discard(stop)

    def close(self) -> None:
        """Stop the running jobs at their next check; don't wait for them."""
        for stop in self._stops:
            stop.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


class ReembedJobs:
    """Re-embedding runs, one at most per collection, each on a thread of its own (it outlives its request); their
    progress is part of the collection's info. Kept in this process only: after a restart the collection is either
    switched or untouched, and a new request starts over."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self, collection: VectorCollection, embed: Callable[[list[str]], np.ndarray], model: str) -> dict:
        with self._lock:
            if self.jobs.get(collection.name, {}).get("state") == "running":
                raise ApiError(409, f"collection {collection.name!r} is being re-embedded already", "name")
            job = self.jobs[collection.name] = {"state": "running", "model": model, "done": 0, "total": None}
        thread = threading.Thread(target=self._run, args=(collection, embed, model, job), daemon=True)
        thread.start()
        return dict(job)

    def _run(self, collection: VectorCollection, embed: Callable, model: str, job: dict[str, Any]) -> None:
        def progress(done: int, total: int) -> None:
            job.update(done=done, total=total)

        try:
            collection.reembed(embed, model, progress=progress, cancelled=self._stop.is_set)
            job["state"] = "done"
        except Exception as exc:  # the job's answer is its state; the server goes on
            if not isinstance(exc, CollectionError):
                log.exception("re-embedding collection %r failed", collection.name)
            job.update(state="failed", error=getattr(exc, "message", str(exc)))

    def forget(self, name: str) -> None:
        """A dropped collection's finished job; a running one ends on its own (NotFound) and stays until then."""
        with self._lock:
            if self.jobs.get(name, {}).get("state") != "running":
                self.jobs.pop(name, None)

    def status(self, name: str) -> dict[str, Any] | None:
        job = self.jobs.get(name)
        return dict(job) if job is not None else None

    def close(self) -> None:
        """Stop running jobs at their next batch; an unfinished one leaves its collection untouched."""
        self._stop.set()


def _hit(hit: Hit) -> dict[str, Any]:
    return {"id": hit.id, "score": hit.score, "text": hit.text, "metadata": hit.metadata}


def _item_out(item: Item) -> dict[str, Any]:
    out = {
        "id": item.id,
        "text": item.text,
        "metadata": item.metadata,
        "vector_source": "caller" if item.given else "model",
    }
    if item.vector is not None:
        out["vector"] = item.vector.tolist()
    return out


def _search_all(collection: VectorCollection, queries: Sequence[tuple[np.ndarray, int, Any]]) -> list[list[Hit]]:
    """Each query in turn; an error names the query it is about (queries[i].field)."""
    answers = []
    for i, (vector, top_k, flt) in enumerate(queries):
        try:
            answers.append(collection.search(vector, top_k, flt))
        except CollectionError as exc:
            exc.field = f"queries[{i}].{exc.field}" if exc.field and exc.status == 422 else exc.field
            raise
    return answers


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
    if TYPE_CHECKING:  # a type built from the settings at start-up: to a static checker, a str
        Text: TypeAlias = str
    else:
        Text = Annotated[limits.text(settings), AfterValidator(check_utf8)]
    Numbers = Annotated[list[float], Field(min_length=1, max_length=MAX_DIM)]
    TopK = Annotated[int, Field(ge=1, le=settings.limits.max_top_k)]
    scalar = {"type": ["string", "number", "boolean", "null"]}
    Filter = Annotated[
        dict[str, Any],
        WithJsonSchema(
            {"type": "object", "additionalProperties": scalar, "maxProperties": settings.limits.max_filter_keys}
        ),
        Field(description=f"exact match on metadata: {{key: scalar}}, at most {settings.limits.max_filter_keys} keys"),
    ]

    class CreateRequest(BaseModel):
        """Index kind and parameters; those left out take the server's defaults (O2V_HNSW_*, O2V_IVF_*, O2V_INDEX_*)."""

        model_config = STRICT
        index: Literal["flat", "hnsw", "ivf", "hnsw_sq8", "ivf_pq"] | None = None
        m: int | None = _index_param("m", "hnsw, hnsw_sq8: graph neighbours per node")
        ef_construction: int | None = _index_param("ef_construction", "hnsw, hnsw_sq8: build-time beam")
        ef_search: int | None = _index_param("ef_search", "hnsw, hnsw_sq8: query-time beam")
        nlist: int | None = _index_param("nlist", "ivf, ivf_pq: inverted lists")
        nprobe: int | None = _index_param("nprobe", "ivf, ivf_pq: lists scanned per query")
        min_train: int | None = _index_param("min_train", "ivf, ivf_pq: vectors stored before it trains")
        pq_m: int | None = _index_param("pq_m", "ivf_pq: bytes per vector (parts of the product quantizer)")
        rerank: int | None = _index_param("rerank", "hnsw_sq8, ivf_pq: candidates beyond top_k re-ranked exactly")
        min_score: float | None = Field(
            None, description="classify's default min_score for this collection; replaces a calibration's"
        )

    class ItemIn(BaseModel):
        model_config = ConfigDict(**STRICT, json_schema_extra=text_or_vector("text", "anyOf"))
        id: ItemId
        text: Text | None = None
        metadata: dict[str, Any] = Field(default_factory=dict)
        vector: Numbers | None = Field(None, description="a precomputed embedding; the text is then not embedded")

    class UpsertRequest(BaseModel):
        model_config = STRICT
        items: Annotated[list[ItemIn], Field(min_length=1, max_length=settings.limits.max_request_texts)]

    class SearchRequest(BaseModel):
        model_config = ConfigDict(**STRICT, json_schema_extra=text_or_vector("query"))
        query: Text | None = None
        vector: Numbers | None = None
        top_k: TopK = 10
        filter: Filter | None = None

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(**STRICT, json_schema_extra=text_or_vector("text"))
        text: Text | None = None
        vector: Numbers | None = None
        label_key: Annotated[str, StringConstraints(min_length=1, max_length=256)] = "label"
        k: TopK = 10
        min_score: float | None = Field(
            None,
            description="default: the collection's (PUT or o2v index calibrate), else "
            f"{settings.classify_min_score} (O2V_CLASSIFY_MIN_SCORE)",
        )

    class ClusterRequest(BaseModel):
        model_config = STRICT
        k: Annotated[
            int, Field(ge=1, le=settings.limits.max_clusters, description="also: k × items × 5 ≤ O2V_MAX_CLUSTER_WORK")
        ]
        seed: Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)] = 1234
        representatives: Annotated[int, Field(ge=0, le=100)] = 3

    class GetItemsRequest(BaseModel):
        model_config = STRICT
        ids: Annotated[list[ItemId], Field(min_length=1, max_length=settings.limits.max_get_ids)]
        with_vector: bool = False

    class ScrollRequest(BaseModel):
        model_config = STRICT
        limit: Annotated[int, Field(ge=1, le=settings.limits.max_scroll_limit)] = 100
        cursor: Annotated[str, StringConstraints(min_length=2, max_length=8 * MAX_ID_CHARS)] | None = Field(
            None, description="next_cursor of the previous page; absent for the first"
        )
        filter: Filter | None = None
        with_vector: bool = False

    class CountRequest(BaseModel):
        model_config = STRICT
        filter: Filter | None = None

    class BatchSearchRequest(BaseModel):
        model_config = STRICT
        queries: Annotated[list[SearchRequest], Field(min_length=1, max_length=settings.limits.max_search_batch)]

    served = model_fingerprint(encoder)

    async def follow(
        request: Request, collection: VectorCollection, embedder: Embedder, text: str | None
    ) -> tuple[Embedder, str]:
        """The Embedder of the model that embedded this collection's texts and its fingerprint: the served model, or
        a registry model after POST /collections/{name}/reembed {"model"}. 409 before a text is embedded for a
        collection no model here embedded."""
        if text is None:
            return embedder, served
        stored = await _call(collection.model)
        if stored is None or stored == served:
            return embedder, served
        found = await request.app.state.models.for_fingerprint(stored)
        if found is None:
            await _call(collection.check_model, served)
        return found, stored

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.collections = await asyncio.to_thread(open_collections, settings)
        app.state.heavy_jobs = HeavyJobs(settings.limits.max_heavy_jobs)
        app.state.reembed_jobs = ReembedJobs()
        try:
            yield
        finally:
            app.state.reembed_jobs.close()
            app.state.heavy_jobs.close()
            await asyncio.to_thread(app.state.collections.close)

    router = APIRouter(tags=["collections"], lifespan=lifespan)
    write = [Depends(require_api_key)]

    @router.put(
        "/collections/{name}",
        response_model=CollectionInfo,
        dependencies=write,
        responses={201: {"model": CollectionInfo, "description": "created"}, **responses(400, 401, 409, 422)},
        openapi_extra=_links(
            ("200", "201"),
            upsert_items=BY_NAME,
            collection_info=BY_NAME,
            drop_collection=BY_NAME,
            reembed_collection=BY_NAME,
            get_items=BY_NAME,
            scroll_items=BY_NAME,
            count_items=BY_NAME,
            search_batch=BY_NAME,
            search=BY_NAME,
            classify_text=BY_NAME,
        ),
    )
    async def create_collection(name: Name, collections: CollectionsDep, body: CreateRequest | None = None) -> Response:
        """Create the collection, or return it when it exists with the settings asked for (409 when not)."""
        asked = body or CreateRequest()
        params = asked.model_dump(exclude_none=True, exclude={"index", "min_score"})
        collection, created = await _call(collections.create, name, asked.index, params)
        if asked.min_score is not None:
            await _call(set_min_score, collection, asked.min_score)
        return json_response(await _call(collection.info), status=201 if created else 200)

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
        return json_response(await _call(infos, collections))

    @router.get(
        "/collections/{name}",
        response_model=CollectionInfo,
        responses=responses(404, 422),
        operation_id="collection_info",
    )
    async def collection_info(name: Name, request: Request, collections: CollectionsDep) -> Response:
        """Count, dimension, index, the model fingerprint, and the progress of a re-embedding started here."""
        collection = await _call(collections.get, name)
        info = await _call(collection.info)
        job = request.app.state.reembed_jobs.status(name)
        return json_response({**info, "reembed": job} if job is not None else info)

    @router.post(
        "/collections/{name}/reembed",
        status_code=202,
        response_model=ReembedStatus,
        dependencies=write,
        responses=responses(*BODY_ERRORS, 401, 404, 409),
        operation_id="reembed_collection",
        openapi_extra=_links(("202",), collection_info=BY_NAME),
    )
    async def reembed_collection(
        name: Name, request: Request, collections: CollectionsDep, body: ReembedRequest | None = None
    ) -> Response:
        """Embed every stored text again with the served model, or with `model` of GET /v1/models, in the
        background; the collection switches to the new vectors in one step at the end and answers from the old ones
        until then; from then on its searches and classifications embed their texts with that model. Progress: GET
        the collection."""
        collection = await _call(collections.get, name)
        if not collection.reembeds:
            raise ApiError(422, f"the {type(collection).__name__} engine cannot re-embed its collections", "store")
        chosen, fingerprint = encoder, served
        if body is not None and body.model is not None:
            chosen = (await model_embedder(request, body.model)).encoder
            fingerprint = model_fingerprint(chosen)
        job = request.app.state.reembed_jobs.start(collection, chosen.embed_texts, fingerprint)
        return json_response(job, status=202)

    @router.delete(
        "/collections/{name}",
        status_code=204,
        dependencies=write,
        responses=responses(401, 404, 422),
        operation_id="drop_collection",
    )
    async def drop_collection(name: Name, request: Request, collections: CollectionsDep) -> Response:
        await _call(collections.drop, name)
        request.app.state.reembed_jobs.forget(name)
        return Response(status_code=204)

    @router.post(
        "/collections/{name}/items",
        response_model=Upserted,
        dependencies=write,
        responses=responses(400, 401, 404, 409, 413, 422, 503),
        operation_id="upsert_items",
        openapi_extra=_links(
            ("200",),
            search=BY_NAME,
            classify_text=BY_NAME,
            cluster_items=BY_NAME,
            delete_item={**BY_NAME, "item_id": "$request.body#/items/0/id"},
            get_item={**BY_NAME, "item_id": "$request.body#/items/0/id"},
        ),
    )
    async def upsert_items(
        name: Name,
        body: UpsertRequest,
        request: Request,
        collections: CollectionsDep,
        embedder: EmbedderDep,
    ) -> Response:
        """Insert or replace items by id; texts without a vector are embedded (by the collection's model).
        Answered only once durable."""
        collection = await _call(collections.get, name)
        embedded = any(item.vector is None for item in body.items)
        embedder, model = await follow(request, collection, embedder, "" if embedded else None)
        vectors = await _item_vectors(body.items, embedder)
        items = [Item(item.id, item.text or "", item.metadata, item.vector is not None) for item in body.items]
        return json_response({"upserted": await _call(collection.upsert, items, vectors, model if embedded else None)})

    @router.get(
        "/collections/{name}/items/{item_id:path}",
        response_model=ItemOut,
        responses=responses(404, 422, 503),
        operation_id="get_item",
    )
    async def get_item(name: Name, item_id: str, collections: CollectionsDep, with_vector: bool = False) -> Response:
        """One item: its text, metadata and where its vector came from; the vector itself with ?with_vector=true."""
        collection = await _call(collections.get, name)
        found = (await _call(collection.items, [item_id], with_vector))[0]
        if found is None:
            raise NotFound.item(name, item_id)
        return json_response(_item_out(found))

    @router.post(
        "/collections/{name}/get",
        response_model=ItemsResponse,
        responses=responses(400, 404, 422, 503),
        operation_id="get_items",
    )
    async def get_items(name: Name, body: GetItemsRequest, collections: CollectionsDep) -> Response:
        """The items of these ids (at most O2V_MAX_GET_IDS), in the order asked; the ids not stored in `missing`."""
        collection = await _call(collections.get, name)
        found = await _call(collection.items, body.ids, body.with_vector)
        missing = [i for i, item in zip(body.ids, found, strict=True) if item is None]
        return json_response({"items": [_item_out(i) for i in found if i is not None], "missing": missing})

    @router.post(
        "/collections/{name}/scroll",
        response_model=ScrollResponse,
        responses=responses(400, 404, 422, 503),
        operation_id="scroll_items",
    )
    async def scroll_items(name: Name, body: ScrollRequest, collections: CollectionsDep) -> Response:
        """Every item, page by page in id order (at most O2V_MAX_SCROLL_LIMIT a page), optionally only exact
        metadata matches. Items written meanwhile after the cursor show up; none is skipped or repeated."""
        collection = await _call(collections.get, name)
        found, cursor = await _call(collection.page, body.cursor, body.limit, body.filter, body.with_vector)
        return json_response({"items": [_item_out(i) for i in found], "next_cursor": cursor})

    @router.post(
        "/collections/{name}/count",
        response_model=CountResponse,
        responses=responses(400, 404, 422, 503),
        operation_id="count_items",
    )
    async def count_items(name: Name, collections: CollectionsDep, body: CountRequest | None = None) -> Response:
        """Items whose metadata matches the filter exactly; all items without one."""
        collection = await _call(collections.get, name)
        return json_response({"count": await _call(collection.count_where, (body or CountRequest()).filter)})

    @router.delete(
        "/collections/{name}/items/{item_id:path}",
        status_code=204,
        dependencies=write,
        responses=responses(401, 404, 422),
        operation_id="delete_item",
    )
    async def delete_item(name: Name, item_id: str, collections: CollectionsDep) -> Response:
        collection = await _call(collections.get, name)
        if not await _call(collection.delete, item_id):
            raise NotFound.item(name, item_id)
        return Response(status_code=204)

    @router.post(
        "/collections/{name}/search",
        response_model=SearchResponse,
        responses=responses(400, 404, 409, 422, 503),
        operation_id="search",
    )
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
        embedder, _ = await follow(request, collection, embedder, body.query)
        query = await _query_vector(embedder, body.query, body.vector)
        hits = await _call(collection.search, query, body.top_k, body.filter)
        if body.query is not None and hits:
            observe_scores(request, SEARCH_TOP1, [hits[0].score])
        return json_response({"hits": [_hit(h) for h in hits]})

    @router.post(
        "/collections/{name}/search/batch",
        response_model=BatchSearchResponse,
        responses=responses(400, 404, 409, 422, 503),
        operation_id="search_batch",
    )
    async def search_batch(
        name: Name,
        body: BatchSearchRequest,
        request: Request,
        collections: CollectionsDep,
        embedder: EmbedderDep,
    ) -> Response:
        """Several searches in one request (at most O2V_MAX_SEARCH_BATCH queries, O2V_MAX_TOP_K hits in all); the
        texts are embedded together."""
        for i, q in enumerate(body.queries):
            _one_of(q.query, q.vector, f"queries[{i}].query")
        asked = sum(q.top_k for q in body.queries)
        if asked > settings.limits.max_top_k:  # one answer holds no more hits than one search may (O2V_MAX_TOP_K)
            message = f"the queries ask for {asked} hits in all; at most {settings.limits.max_top_k} (O2V_MAX_TOP_K)"
            raise ApiError(422, message, "queries")
        collection = await _call(collections.get, name)
        texts = [q.query for q in body.queries if q.query is not None]
        embedder, _ = await follow(request, collection, embedder, texts[0] if texts else None)
        embedded = iter(await embedder.embed(texts) if texts else [])
        vectors = [
            next(embedded) if q.query is not None else await _query_vector(embedder, None, q.vector)
            for q in body.queries
        ]
        queries = [(v, q.top_k, q.filter) for v, q in zip(vectors, body.queries, strict=True)]
        answers = await _call(_search_all, collection, queries)
        tops = [hits[0].score for q, hits in zip(body.queries, answers, strict=True) if q.query is not None and hits]
        if tops:
            observe_scores(request, SEARCH_TOP1, tops)
        return json_response({"results": [{"hits": [_hit(h) for h in hits]} for hits in answers]})

    @router.post(
        "/collections/{name}/classify",
        response_model=ClassifyResponse,
        responses=responses(400, 404, 409, 422, 503),
        operation_id="classify_text",
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
        embedder, _ = await follow(request, collection, embedder, body.text)
        query = await _query_vector(embedder, body.text, body.vector)
        work = (collection, query, body.label_key, body.k, body.min_score, settings.classify_min_score)
        result = await _call(classify, *work)
        if body.text is not None:
            observe_scores(request, CLASSIFY_CONFIDENCE, [result.confidence])
            observe_label(request, result.label, result.confidence)
            label = None if result.label is None else canonical(result.label)
            reference = partial(
                leave_one_out,
                collection,
                body.label_key,
                body.k,
                body.min_score,
                settings.classify_min_score,
                CLASSIFY_REFERENCE_MAX,
            )
            observe_classification(request, name, body.label_key, reference, label, result.confidence)
        neighbors = [_hit(h) for h in result.neighbors]
        return json_response({"label": result.label, "confidence": result.confidence, "neighbors": neighbors})

    @router.post(
        "/collections/{name}/cluster",
        response_model=ClusterResponse,
        responses=responses(400, 404, 422, 503),
        operation_id="cluster_items",
    )
    async def cluster_items(
        name: Name, body: ClusterRequest, request: Request, collections: CollectionsDep
    ) -> Response:
        """Spherical k-means with a seed (same seed, same items → same answer); clusters largest first.
        At most O2V_MAX_HEAVY_JOBS run at once (503 beyond), each within O2V_MAX_CLUSTER_WORK (422 naming k)."""
        collection = await _call(collections.get, name)
        work = (collection, body.k, body.seed, body.representatives, settings.limits.max_cluster_work)
        result = await request.app.state.heavy_jobs.run(request, cluster, *work)
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
