"""POST /rerank: texts ranked by relevance to a query, in TEI's and Cohere's request shape (`texts` or `documents`).

Scored by the model's Object2Vec comparator + MLP (scorer.onnx, or the SageMaker endpoint's in0+in1 pair mode), the
same `score` /similarity answers, or by cosine when the model has no scorer; the answer names which (`scorer`),
since the two scales differ.
"""

from typing import Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, JsonValue, StrictBool
from starlette.responses import Response

from service.api import limits
from service.api.deps import model_embedder
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.render import json_response
from service.encoders.base import Encoder
from service.settings import Settings

ONE_OF_TEXTS_DOCUMENTS: list[JsonValue] = [
    {"required": ["texts"], "not": {"required": ["documents"]}},
    {"required": ["documents"], "not": {"required": ["texts"]}},
]
"""The schema states the rule too (exactly one of the two names), so generated clients and checkers know it."""


class RerankResult(BaseModel):
    index: int = Field(description="position of the text in the request")
    score: float
    text: str | None = Field(None, description="the text, when return_documents is true")


class RerankResponse(BaseModel):
    object: Literal["rerank"] = "rerank"
    model: str
    scorer: Literal["object2vec", "cosine"] = Field(
        description="object2vec: the model's comparator+MLP score (as /similarity's `score`); cosine: the model "
        "has no scorer"
    )
    results: list[RerankResult] = Field(description="best first")


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["rerank"])

    class RerankRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": ONE_OF_TEXTS_DOCUMENTS})
        query: limits.text(settings)
        # absent is None (defaults are not validated), an explicit null is refused as the schema says
        texts: limits.texts(settings) = Field(None, description="the texts to rank (TEI's name)")
        documents: limits.texts(settings) = Field(None, description="the texts to rank (Cohere's name)")
        top_n: limits.whole_number(1, settings.max_batch_size) | None = Field(
            None, description="best n only; default all"
        )
        return_documents: StrictBool = Field(
            False, validation_alias=AliasChoices("return_documents", "return_text"), description="add each text"
        )
        raw_scores: StrictBool = Field(
            False, description="a softmax model's log-odds instead of its probability; other scores are raw already"
        )
        model: str | None = Field(
            None,
            description="a model of GET /v1/models; any other name (Cohere's clients must send one) means the "
            "default model",
        )

    @router.post("/rerank", response_model=RerankResponse, responses=responses(*BODY_ERRORS, 502, 503))
    async def rerank(body: RerankRequest, request: Request) -> Response:
        """The texts ordered by relevance to the query, best first (ties keep request order)."""
        embedder = await model_embedder(request, body.model, strict=False)
        if (body.texts is None) == (body.documents is None):
            raise ApiError(422, "send the texts to rank as exactly one of `texts` and `documents`", field="texts")
        texts = body.texts if body.texts is not None else body.documents
        assert texts is not None
        scores, scorer = await embedder.rerank(body.query, texts, raw=body.raw_scores)
        order = np.argsort(-scores, kind="stable")[: body.top_n]
        results = [
            {"index": int(i), "score": float(scores[i]), **({"text": texts[i]} if body.return_documents else {})}
            for i in order
        ]
        return json_response({"object": "rerank", "model": embedder.name, "scorer": scorer, "results": results})

    return router
