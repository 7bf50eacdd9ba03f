"""POST /similarity: cosine of each pair's embeddings, plus the Object2Vec comparator score where the model has one."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api.deps import admit_stream, model_embedder, observe_pairs
from service.api.errors import BODY_ERRORS, responses
from service.api.render import json_response
from service.api.schemas.similarity import SimilarityRequest, SimilarityResponse
from service.drift.streams import SIMILARITY
from service.vectors import pair_cosines

router = APIRouter(tags=["similarity"])


@router.post("/similarity", response_model=SimilarityResponse, responses=responses(*BODY_ERRORS, 404, 502, 503))
async def similarity(body: SimilarityRequest, request: Request) -> Response:
    """Texts a and b of each pair go through encoder 0 for the cosine, through in0/in1 for the score."""
    embedder = await model_embedder(request, body.model)
    if body.stream is not None:
        admit_stream(request, body.stream)
    n = len(body.pairs)
    rows = await embedder.tokenize([a for a, _ in body.pairs] + [b for _, b in body.pairs])
    vectors = await embedder.embed_ids(rows)
    cosines = pair_cosines(vectors[:n], vectors[n:])
    scores = (await embedder.score_ids(rows[:n], rows[n:]))[:, -1].tolist() if embedder.has_scorer else [None] * n
    observe_pairs(request, embedder, body.stream or SIMILARITY, body.pairs, (rows[:n], rows[n:]), cosines.tolist())
    results = [{"cosine": c, "score": s} for c, s in zip(cosines.tolist(), scores, strict=True)]
    return json_response({"results": results})
