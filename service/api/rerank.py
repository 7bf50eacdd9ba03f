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
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api.deps import model_embedder
from service.api.embeddings import refuse_cut
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.render import json_response
from service.api.schemas.rerank import RerankRequest, RerankResponse, RerankResult

router = APIRouter(tags=["rerank"])
errors = responses(*BODY_ERRORS, 404, 502, 503)


@router.post("/rerank", response_model=list[RerankResult] | RerankResponse, responses=errors)
@router.post("/v1/rerank", response_model=RerankResponse, responses=errors, include_in_schema=False)
@router.post("/v2/rerank", response_model=RerankResponse, responses=errors, include_in_schema=False)
async def rerank(body: RerankRequest, request: Request) -> Response:
    """The texts ordered by relevance to the query, best first (ties keep request order); `texts` gets TEI's
    list, `documents` Cohere's object. /v1/rerank and /v2/rerank are the paths Cohere's clients call."""
    cohere_path = request.url.path != "/rerank"
    embedder = await model_embedder(request, body.model)
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
