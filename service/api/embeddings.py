"""Embedding routes: OpenAI-compatible POST /v1/embeddings and the native POST /embed.

Both take TEI's `truncate` and `truncation_direction`: a text longer than the model's max_seq_len tokens is cut
(the default) or refused, and the answer says how many were cut (`truncated`, header X-Truncated-Inputs), since a
silently cut text embeds only part of what the caller sent. Both take OpenAI's `dimensions`: the first k values,
re-normalised; a model directory rotated into its principal axes (service/object2vec/rotation.py, recorded in its
card) makes those the best k-dimensional summary, any other model gives its first k dimensions as they are.
"""

import base64
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from starlette.responses import Response

from service.api import limits
from service.api.deps import model_embedder
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.openai_compat import refuse_token_ids
from service.api.render import json_response
from service.encoders.base import Encoder, l2_normalize
from service.encoders.embedder import Embedder
from service.settings import Settings
from service.text import Direction

TRUNCATED_HEADER = "X-Truncated-Inputs"


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32 bytes")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="tokens embedded (after truncation)")
    total_tokens: int
    truncated: int = Field(0, description="inputs cut to the model's max_seq_len tokens")


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    dim: int
    model: str
    truncated: int = Field(0, description="texts cut to the model's max_seq_len tokens")


class Truncation(BaseModel):
    """TEI's truncation fields."""

    truncate: StrictBool = Field(
        True, description="cut a text longer than the model's max_seq_len tokens; false: such a text is a 422"
    )
    truncation_direction: Direction = Field("right", description="right: the end is cut; left: the start is")


def _encode(vector: np.ndarray, encoding: str) -> np.ndarray | str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode() if encoding == "base64" else vector


async def embed_truncating(
    embedder: Embedder, texts: Sequence[str], how: Truncation, field: str, dimensions: int | None = None
) -> tuple[np.ndarray, int, int]:
    """Raw embeddings (their first `dimensions` values), tokens embedded and texts cut; with `truncate` false a text
    that would be cut is a 422 naming it (`field[i]`), its token count and the limit."""
    encoded = await embedder.tokenize_counted(texts, how.truncation_direction)
    cut = encoded.truncated
    if cut and not how.truncate:
        i = cut[0]
        raise ApiError(
            422,
            f"text {i} has {encoded.lengths[i]} tokens; the model reads at most {encoded.max_seq_len} and truncate "
            f"is false" + (f" ({len(cut)} texts are over)" if len(cut) > 1 else ""),
            field=f"{field}[{i}]",
        )
    vectors = await embedder.embed_ids(encoded.rows)
    if dimensions is not None:
        if dimensions > vectors.shape[1]:  # the schema says enc_dim; a SageMaker endpoint's width may differ
            message = f"dimensions is {dimensions}; the model's embeddings have {vectors.shape[1]}"
            raise ApiError(422, message, field="dimensions")
        vectors = np.ascontiguousarray(vectors[:, :dimensions])  # orjson writes C-contiguous arrays only
    return vectors, sum(len(row) for row in encoded.rows), len(cut)


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["embeddings"])

    class Shaped(Truncation):
        dimensions: limits.whole_number(1, encoder.dim) | None = Field(
            None,
            description="OpenAI's: keep the first k values, re-normalised (the principal ones for a model whose card "
            "records a rotation; other models' first k as they are)",
        )

    class EmbeddingsRequest(Shaped):
        """OpenAI's request; `user` is accepted and ignored. `model` may be omitted, the served model's name or one
        of O2V_MODEL_ALIASES (others: 404 model_not_found). Token ids are refused: our vocabulary is not OpenAI's."""

        model_config = ConfigDict(extra="ignore")
        input: Annotated[limits.text_or_texts(settings), BeforeValidator(refuse_token_ids)]
        model: str | None = None
        encoding_format: Literal["float", "base64"] = "float"
        user: str | None = None

    class EmbedRequest(Shaped):
        model_config = ConfigDict(extra="forbid")
        texts: limits.texts(settings)
        normalize: StrictBool = Field(True, description="scale each embedding to unit length")
        model: str | None = Field(None, description="a model of GET /v1/models (default: the default model)")

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

    @router.post("/embed", response_model=EmbedResponse, responses=responses(*BODY_ERRORS, 404, 502, 503))
    async def embed(body: EmbedRequest, request: Request) -> Response:
        """Embeddings of a list of texts; unit length unless `normalize` is false."""
        embedder = await model_embedder(request, body.model)
        vectors, _, cut = await embed_truncating(embedder, body.texts, body, "texts", body.dimensions)
        answer = {
            "embeddings": l2_normalize(vectors) if body.normalize else vectors,
            "dim": vectors.shape[1],
            "model": embedder.name,
            "truncated": cut,
        }
        return json_response(answer, headers={TRUNCATED_HEADER: str(cut)})

    return router
