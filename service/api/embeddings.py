"""Embedding routes: OpenAI-compatible POST /v1/embeddings, POST /embed (ours, or TEI's with `inputs`), TEI's root
POST / (an /embed body, or huggingface_hub's sentence-similarity body) and Cohere's POST /v2/embed.

All take TEI's `truncate` and `truncation_direction` (Cohere: `truncate`): a text longer than the model's max_seq_len
tokens is cut (the default) or refused, and the answer says how many were cut (`truncated`, header
X-Truncated-Inputs), since a silently cut text embeds only part of what the caller sent. All take OpenAI's
`dimensions` (Cohere: `output_dimension`): the first k values, re-normalised; a model directory rotated into its
principal axes (service/object2vec/rotation.py, recorded in its card) makes those the best k-dimensional summary, any
other model gives its first k dimensions as they are.
"""

import base64
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, Request
from pydantic import JsonValue
from starlette.responses import Response

from service.api.deps import model_embedder
from service.api.errors import BODY_ERRORS, ApiError, responses, validated
from service.api.render import json_response
from service.api.schemas.embeddings import (
    ROOT_BODY,
    CohereEmbedRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
    SimilarityRequest,
    Truncation,
)
from service.encoders.embedder import Embedder
from service.text import Encoded
from service.vectors import l2_normalize, pair_cosines

TRUNCATED_HEADER = "X-Truncated-Inputs"
router = APIRouter(tags=["embeddings"])


def _encode(vector: np.ndarray, encoding: str) -> np.ndarray | str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode() if encoding == "base64" else vector


def refuse_cut(encoded: Encoded, field_of: Callable[[int], str]) -> None:
    """A 422 naming the first input cut to max_seq_len (`field_of(i)`), its token count and the limit."""
    cut = encoded.truncated
    if cut:
        i, field = cut[0], field_of(cut[0])
        raise ApiError(
            422,
            f"{field} has {encoded.lengths[i]} tokens; the model reads at most {encoded.max_seq_len} and truncate "
            f"is false" + (f" ({len(cut)} texts are over)" if len(cut) > 1 else ""),
            field=field,
        )


async def embed_truncating(
    embedder: Embedder,
    texts: Sequence[str],
    how: Truncation,
    field: str | Callable[[int], str],
    dimensions: int | None = None,
) -> tuple[np.ndarray, int, int]:
    """Raw embeddings (their first `dimensions` values), tokens embedded and texts cut; with `truncate` false a text
    that would be cut is a 422 naming it (`field[i]`, or `field(i)`), its token count and the limit."""
    encoded = await embedder.tokenize_counted(texts, how.direction)
    cut = encoded.truncated
    if how.truncate is False:
        refuse_cut(encoded, field if callable(field) else lambda i: f"{field}[{i}]")
    vectors = await embedder.embed_ids(encoded.rows)
    if dimensions is not None:
        if dimensions > vectors.shape[1]:  # the schema says enc_dim; a SageMaker endpoint's width may differ
            message = f"dimensions is {dimensions}; the model's embeddings have {vectors.shape[1]}"
            raise ApiError(422, message, field="dimensions")
        vectors = np.ascontiguousarray(vectors[:, :dimensions])  # orjson writes C-contiguous arrays only
    return vectors, sum(len(row) for row in encoded.rows), len(cut)


@router.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=responses(*BODY_ERRORS, 404, 502, 503))
async def create_embeddings(body: EmbeddingsRequest, request: Request) -> Response:
    """Unit-length embeddings of one text or a list of them, in OpenAI's response shape."""
    embedder = await model_embedder(request, body.model)
    vectors, tokens, cut = await embed_truncating(embedder, body.input, body, "input", body.dimensions)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
        for i, v in enumerate(l2_normalize(vectors))
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens, "truncated": cut}
    answer = {"object": "list", "data": data, "model": embedder.name, "usage": usage}
    return json_response(answer, headers={TRUNCATED_HEADER: str(cut)})


@router.post(
    "/embed", response_model=EmbedResponse | list[list[float]], responses=responses(*BODY_ERRORS, 404, 502, 503)
)
async def embed(body: EmbedRequest, request: Request) -> Response:
    """Embeddings of a list of texts; unit length unless `normalize` is false. `inputs` (TEI's request) gets
    TEI's answer, a bare list of embeddings."""
    if (body.texts is None) == (body.inputs is None):
        raise ApiError(422, "send the texts as exactly one of `texts` and `inputs` (TEI's)", field="texts")
    embedder = await model_embedder(request, body.model)
    if body.inputs is not None:
        vectors, _, cut = await embed_truncating(embedder, body.inputs, body, "inputs", body.dimensions)
        rows = l2_normalize(vectors) if body.normalize else vectors
        return json_response(rows, headers={TRUNCATED_HEADER: str(cut)})
    vectors, _, cut = await embed_truncating(embedder, body.texts, body, "texts", body.dimensions)
    answer = {
        "embeddings": l2_normalize(vectors) if body.normalize else vectors,
        "dim": vectors.shape[1],
        "model": embedder.name,
        "truncated": cut,
    }
    return json_response(answer, headers={TRUNCATED_HEADER: str(cut)})


@router.post("/v2/embed", responses=responses(*BODY_ERRORS, 404, 502, 503))
async def cohere_embed(body: CohereEmbedRequest, request: Request) -> Response:
    """Cohere's v2 embed (`ClientV2(base_url=...).embed`): unit-length embeddings by type, float or base64, of the
    model `model` names (a model of GET /v1/models or an alias; none: the default model)."""
    embedder = await model_embedder(request, body.model)
    how = Truncation(
        truncate=body.truncate != "NONE", truncation_direction="left" if body.truncate == "START" else "right"
    )
    vectors, tokens, _ = await embed_truncating(embedder, body.texts, how, "texts", body.output_dimension)
    unit = l2_normalize(vectors)
    embeddings = {
        kind: unit if kind == "float" else [_encode(v, "base64") for v in unit] for kind in body.embedding_types
    }
    meta = {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}}
    answer = {"id": str(uuid.uuid4()), "response_type": "embeddings_by_type", "embeddings": embeddings}
    return json_response({**answer, "texts": body.texts, "meta": meta})


@router.post(
    "/",
    response_model=list[list[float]] | list[float] | EmbedResponse,
    responses=responses(*BODY_ERRORS, 404, 502, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": ROOT_BODY}}}},
)
async def root(payload: Annotated[dict[str, JsonValue], Body()], request: Request) -> Response:
    """TEI's root route for an embedding model (huggingface_hub's `InferenceClient(model=URL)`): a body whose
    `inputs` is `{"source_sentence", "sentences"}` gets the cosine of the source with each sentence, TEI's
    sentence similarity; any other body is an /embed request. Both embed with the default model."""
    if not isinstance(payload.get("inputs"), dict):
        return await embed(validated(EmbedRequest, payload), request)
    body = validated(SimilarityRequest, payload)
    embedder = await model_embedder(request, None)
    texts = [body.inputs.source_sentence, *body.inputs.sentences]

    def named(i: int) -> str:
        return f"inputs.sentences[{i - 1}]" if i else "inputs.source_sentence"

    vectors, _, _ = await embed_truncating(embedder, texts, body.parameters or Truncation(), named)
    return json_response(pair_cosines(vectors[1:], vectors[:1]))
