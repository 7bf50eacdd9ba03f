"""Query routes: search (one or a batch), classify and cluster.

Scores of text queries go to the drift streams `search_top1` and `classify_confidence` (and classify's labels to the
label ranking) when the drift monitor watches the model that embedded them (`observe_scores`): those streams judge
the default model, and a collection re-embedded with another model, or kept on the configured one after a
promotion, answers with other vectors. Classify answers always go to the collection's own classify stream, whose
reference is the collection itself, in its model's space. Queries given as vectors say nothing about the traffic's
texts and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request
from starlette.responses import Response

from service.api import limits
from service.api.collections.embedding import follow, one_of, query_vector
from service.api.collections.routing import CollectionRouter, Name, answer, call
from service.api.deps import (
    CollectionsDep,
    EmbedderDep,
    ServicesDep,
    get_heavy_jobs,
    observe_classification,
    observe_label,
    observe_scores,
)
from service.api.errors import ApiError
from service.api.jobs import HeavyJobs
from service.api.schemas.collections import (
    BatchSearchRequest,
    BatchSearchResponse,
    ClassifyRequest,
    ClassifyResponse,
    ClusterRequest,
    ClusterResponse,
    SearchRequest,
    SearchResponse,
)
from service.drift.config import CLASSIFY_REFERENCE_MAX
from service.drift.streams import CLASSIFY_CONFIDENCE, SEARCH_TOP1
from service.index.base import Hit, VectorCollection
from service.index.classify import classify, leave_one_out
from service.index.cluster import cluster
from service.index.errors import CollectionError
from service.index.metadata import canonical

router = CollectionRouter()
HeavyJobsDep = Annotated[HeavyJobs, Depends(get_heavy_jobs)]
QUERY_ERRORS = (400, 404, 409, 422, 503)


def search_all(collection: VectorCollection, queries: Sequence[tuple[np.ndarray, int, Any]]) -> list[list[Hit]]:
    """Each query in turn; an error names the query it is about (queries[i].field)."""
    answers = []
    for i, (vector, top_k, flt) in enumerate(queries):
        try:
            answers.append(collection.search(vector, top_k, flt))
        except CollectionError as exc:
            exc.field = f"queries[{i}].{exc.field}" if exc.field and exc.status == 422 else exc.field
            raise
    return answers


@router.operation("POST", "/collections/{name}/search", SearchResponse, *QUERY_ERRORS)
async def search(
    name: Name,
    body: SearchRequest,
    request: Request,
    collections: CollectionsDep,
    embedder: EmbedderDep,
) -> Response:
    """Nearest items by cosine to a text (embedded here) or a vector, optionally among exact metadata matches."""
    one_of(body.query, body.vector, "query")
    collection = await call(collections.get, name)
    embedder, _ = await follow(request, collection, embedder, body.query)
    query = await query_vector(embedder, body.query, body.vector)
    hits = await call(collection.search, query, body.top_k, body.filter)
    if body.query is not None and hits:
        observe_scores(request, embedder, SEARCH_TOP1, [hits[0].score])
    return answer(SearchResponse(hits=hits))


def check_batch(queries: Sequence[SearchRequest]) -> None:
    """Each query is a text or a vector, and one answer holds no more hits than one search may (O2V_MAX_TOP_K)."""
    for i, q in enumerate(queries):
        one_of(q.query, q.vector, f"queries[{i}].query")
    asked, most = sum(q.top_k for q in queries), limits.current().max_top_k
    if asked > most:
        raise ApiError(422, f"the queries ask for {asked} hits in all; at most {most} (O2V_MAX_TOP_K)", "queries")


@router.operation("POST", "/collections/{name}/search/batch", BatchSearchResponse, *QUERY_ERRORS)
async def search_batch(
    name: Name,
    body: BatchSearchRequest,
    request: Request,
    collections: CollectionsDep,
    embedder: EmbedderDep,
) -> Response:
    """Several searches in one request (at most O2V_MAX_SEARCH_BATCH queries, O2V_MAX_TOP_K hits in all); the
    texts are embedded together."""
    check_batch(body.queries)
    collection = await call(collections.get, name)
    texts = [q.query for q in body.queries if q.query is not None]
    embedder, _ = await follow(request, collection, embedder, texts[0] if texts else None)
    embedded = iter(await embedder.embed(texts) if texts else [])
    vectors = [
        next(embedded) if q.query is not None else await query_vector(embedder, None, q.vector) for q in body.queries
    ]
    queries = [(v, q.top_k, q.filter) for v, q in zip(vectors, body.queries, strict=True)]
    answers = await call(search_all, collection, queries)
    tops = [hits[0].score for q, hits in zip(body.queries, answers, strict=True) if q.query is not None and hits]
    if tops:
        observe_scores(request, embedder, SEARCH_TOP1, tops)
    return answer(BatchSearchResponse(results=[SearchResponse(hits=hits) for hits in answers]))


@router.operation("POST", "/collections/{name}/classify", ClassifyResponse, *QUERY_ERRORS)
async def classify_text(
    name: Name,
    body: ClassifyRequest,
    request: Request,
    collections: CollectionsDep,
    embedder: EmbedderDep,
) -> Response:
    """kNN vote over items having `label_key`; label null when the winner's support is below min_score."""
    one_of(body.text, body.vector, "text")
    collection = await call(collections.get, name)
    embedder, _ = await follow(request, collection, embedder, body.text)
    query = await query_vector(embedder, body.text, body.vector)
    vote = (body.label_key, body.k, body.min_score)
    result = await call(classify, collection, query, *vote)
    if body.text is not None:
        observe_scores(request, embedder, CLASSIFY_CONFIDENCE, [result.confidence])
        observe_label(request, embedder, result.label, result.confidence)
        label = None if result.label is None else canonical(result.label)
        reference = partial(leave_one_out, collection, *vote, limit=CLASSIFY_REFERENCE_MAX)
        observe_classification(request, name, body.label_key, reference, label, result.confidence)
    return answer(ClassifyResponse.model_validate(result))


@router.operation("POST", "/collections/{name}/cluster", ClusterResponse, 400, 404, 422, 503)
async def cluster_items(
    name: Name,
    body: ClusterRequest,
    request: Request,
    collections: CollectionsDep,
    heavy_jobs: HeavyJobsDep,
    services: ServicesDep,
) -> Response:
    """Spherical k-means with a seed (same seed, same items → same answer); clusters largest first.
    At most O2V_MAX_HEAVY_JOBS run at once (503 beyond), each within O2V_MAX_CLUSTER_WORK (422 naming k)."""
    collection = await call(collections.get, name)
    work = (collection, body.k, body.seed, body.representatives, services.settings.limits.max_cluster_work)
    return answer(ClusterResponse.model_validate(await heavy_jobs.run(request, cluster, *work)))
