"""Reranking: texts ordered by relevance to a query, in TEI's and Cohere's shapes, told apart by the body.

`POST /rerank` with TEI's `texts` answers TEI's bare list `[{"index", "score", "relevance_score", "text"?}]`; with
Cohere's `documents` (also `POST /v1/rerank` and `/v2/rerank`, the paths Cohere's clients call) it answers Cohere's
`{"id", "results": [{"index", "relevance_score", "document"?}], "meta"}` plus our `model` and `scorer`. Every result
carries `relevance_score`, the name Cohere, litellm and Infinity read. `document` is Cohere's `{"text"}` on Cohere's
paths and Infinity's bare string on /rerank, where litellm's `infinity/` provider posts (and reads a string).

Scored by the model's Object2Vec comparator + MLP (scorer.onnx, or the SageMaker endpoint's in0+in1 pair mode), the
same `score` /similarity answers, or by cosine when the model has no scorer; the Cohere-shaped answer names which
(`scorer`), since the two scales differ.
"""

import uuid
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, StrictBool
from starlette.responses import Response

from service.api import limits
from service.api.deps import model_embedder
from service.api.embeddings import Truncation, refuse_cut
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.render import json_response
from service.encoders.base import Encoder
from service.settings import Settings

ONE_OF_TEXTS_DOCUMENTS: list[JsonValue] = [
    {"required": ["texts"], "not": {"required": ["documents"]}},
    {"required": ["documents"], "not": {"required": ["texts"]}},
]
"""The schema states the rule too (exactly one of the two names), so generated clients and checkers know it."""


class Document(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="position of the text in the request")
    relevance_score: float = Field(description="the score, under the name Cohere's clients read")
    score: float = Field(description="the same score, under TEI's name")
    text: str | None = Field(None, description="the text, when return_documents (TEI: return_text) is true")
    document: Document | str | None = Field(
        None, description="the text when return_documents is true: {text} on Cohere's paths, a string on /rerank"
    )


class RerankResponse(BaseModel):
    id: str
    object: Literal["rerank"] = "rerank"
    model: str
    scorer: Literal["object2vec", "cosine"] = Field(
        description="object2vec: the model's comparator+MLP score (as /similarity's `score`); cosine: the model "
        "has no scorer"
    )
    results: list[RerankResult] = Field(description="best first")
    meta: dict[str, Any]


def _document_text(value: Any) -> Any:
    """Cohere's v1 documents may be objects: `{"text": ...}` is read as its text."""
    if isinstance(value, dict) and set(value) == {"text"}:
        return value["text"]
    return value


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["rerank"])
    text = limits.text(settings)
    document_texts: Any = Annotated[
        list[Annotated[text, BeforeValidator(_document_text)]],
        Field(min_length=1, max_length=settings.limits.max_request_texts),
    ]
    max_seq_len = encoder.model.max_seq_len("in0")

    class RerankRequest(Truncation):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": ONE_OF_TEXTS_DOCUMENTS})
        query: text
        # absent is None (defaults are not validated), an explicit null is refused as the schema says
        texts: limits.texts(settings) = Field(None, description="the texts to rank (TEI's name: TEI's answer)")
        documents: document_texts = Field(
            None, description="the texts to rank, or {text} objects (Cohere's name: Cohere's answer)"
        )
        top_n: limits.whole_number(1, settings.limits.max_request_texts) | None = Field(
            None, description="best n only; default all"
        )
        return_documents: StrictBool = Field(
            False, validation_alias=AliasChoices("return_documents", "return_text"), description="add each text"
        )
        raw_scores: StrictBool = Field(
            False, description="a softmax model's log-odds instead of its probability; other scores are raw already"
        )
        max_tokens_per_doc: limits.whole_number(max_seq_len, 1 << 31) | None = Field(
            None,
            description=f"Cohere's; the model reads at most {max_seq_len} tokens of each text, so no lower value "
            "can be honoured",
        )
        model: str | None = Field(
            None,
            description="a model of GET /v1/models; any other name (Cohere's clients must send one) means the "
            "default model",
        )
        priority: limits.whole_number(0, 1 << 31) | None = Field(
            None, description="Cohere's scheduling hint; accepted, requests run in order"
        )

    errors = responses(*BODY_ERRORS, 502, 503)

    @router.post("/rerank", response_model=list[RerankResult] | RerankResponse, responses=errors)
    @router.post("/v1/rerank", response_model=RerankResponse, responses=errors, include_in_schema=False)
    @router.post("/v2/rerank", response_model=RerankResponse, responses=errors, include_in_schema=False)
    async def rerank(body: RerankRequest, request: Request) -> Response:
        """The texts ordered by relevance to the query, best first (ties keep request order); `texts` gets TEI's
        list, `documents` Cohere's object. /v1/rerank and /v2/rerank are the paths Cohere's clients call."""
        cohere_path = request.url.path != "/rerank"
        embedder = await model_embedder(request, body.model, strict=False)
        if (body.texts is None) == (body.documents is None):
            raise ApiError(422, "send the texts to rank as exactly one of `texts` and `documents`", field="texts")
        key = "texts" if body.texts is not None else "documents"
        texts = body.texts if body.texts is not None else body.documents
        assert texts is not None
        scores, scorer, encoded = await embedder.rerank(body.query, texts, body.raw_scores, body.direction)
        if body.truncate is False:
            refuse_cut(encoded, lambda i: f"{key}[{i - 1}]" if i else "query")
        order = np.argsort(-scores, kind="stable")[: body.top_n]
        results: list[dict[str, Any]] = []
        for i in order:
            result: dict[str, Any] = {"index": int(i), "relevance_score": float(scores[i]), "score": float(scores[i])}
            if body.return_documents:
                result["text"] = texts[i]
                if key == "documents":  # Cohere's object on Cohere's paths, Infinity's string on /rerank
                    result["document"] = {"text": texts[i]} if cohere_path else texts[i]
            results.append(result)
        if key == "texts":
            return json_response(results)
        meta = {"billed_units": {"search_units": 1}, "tokens": {"input_tokens": sum(len(r) for r in encoded.rows)}}
        answer = {"id": str(uuid.uuid4()), "object": "rerank", "model": embedder.name, "scorer": scorer}
        return json_response({**answer, "results": results, "meta": meta})

    return router
