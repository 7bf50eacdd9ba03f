"""POST /similarity: cosine of each pair's embeddings, plus the Object2Vec comparator score where the model has one."""

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from service.api import limits
from service.api.deps import model_embedder, observe_scores
from service.api.drift import admit_stream
from service.api.errors import BODY_ERRORS, responses
from service.api.render import json_response
from service.drift.streams import SIMILARITY, STREAM_PATTERN
from service.encoders.base import Encoder
from service.settings import Settings
from service.vectors import pair_cosines


class SimilarityResult(BaseModel):
    cosine: float = Field(ge=-1.0, le=1.0)
    score: float | None = Field(
        description="Object2Vec's own score: the value for a regression model, the probability of the last class "
        "for a softmax one; null when the model has no scorer"
    )


class SimilarityResponse(BaseModel):
    results: list[SimilarityResult]


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


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["similarity"])
    text = limits.text(settings)

    class SimilarityRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        pairs: Annotated[list[tuple[text, text]], Field(min_length=1, max_length=settings.limits.max_request_texts)]
        stream: str | None = Field(
            None,
            pattern=STREAM_PATTERN,
            description="drift stream the cosines are counted in (default: similarity); without the API key it "
            "must exist already (built in, O2V_DRIFT_STREAMS, or PUT /drift/streams/{stream})",
        )
        model: str | None = Field(None, description="a model of GET /v1/models (default: the default model)")

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

    return router
