"""POST /similarity: cosine of each pair's embeddings, plus the Object2Vec comparator score where the model has one."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api.deps import model_embedder, observe_scores
from service.api.drift import admit_stream
from service.api.errors import BODY_ERRORS, responses
from service.api.render import json_response
from service.api.schemas.similarity import SimilarityRequest, SimilarityResponse
from service.drift.streams import SIMILARITY
from service.vectors import pair_cosines


def keep_pairs(
    request: Request,
    stream: str,
    pairs: list[tuple[str, str]],
    rows: tuple[list[list[int]], list[list[int]]],
    cosines: list[float],
) -> None:
    """Hand the pairs with their token ids to the drift monitor, which keeps them only with O2V_DRIFT_KEEP_TEXTS
    (for `o2v drift export`, as training pairs); an app without the drift router keeps nothing."""
    monitor = getattr(request.app.state, "drift", None)
    if monitor is not None:
        monitor.record_pairs(stream, pairs, rows, cosines)


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
    observe_scores(request, body.stream or SIMILARITY, cosines.tolist())
    keep_pairs(request, body.stream or SIMILARITY, body.pairs, (rows[:n], rows[n:]), cosines.tolist())
    results = [{"cosine": c, "score": s} for c, s in zip(cosines.tolist(), scores, strict=True)]
    return json_response({"results": results})
