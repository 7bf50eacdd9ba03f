"""Embedding routes: OpenAI-compatible POST /v1/embeddings and the native POST /embed."""

import base64
from typing import Literal

import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response

from service.api import limits
from service.api.deps import EmbedderDep
from service.api.errors import BODY_ERRORS, responses
from service.api.render import json_response
from service.encoders.base import Encoder, l2_normalize
from service.settings import Settings


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32 bytes")


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    dim: int
    model: str


def _encode(vector: np.ndarray, encoding: str) -> np.ndarray | str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode() if encoding == "base64" else vector


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["embeddings"])

    class EmbeddingsRequest(BaseModel):
        """OpenAI's request; `model` and `user` are accepted and ignored (one model is served), as TEI does."""

        model_config = ConfigDict(extra="ignore")
        input: limits.text_or_texts(settings)
        model: str | None = None
        encoding_format: Literal["float", "base64"] = "float"
        user: str | None = None

    class EmbedRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: limits.texts(settings)
        normalize: StrictBool = Field(True, description="scale each embedding to unit length")

    @router.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=responses(*BODY_ERRORS, 502, 503))
    async def create_embeddings(body: EmbeddingsRequest, embedder: EmbedderDep) -> Response:
        """Unit-length embeddings of one text or a list of them, in OpenAI's response shape."""
        rows = await embedder.tokenize(body.input)
        vectors = l2_normalize(await embedder.embed_ids(rows))
        tokens = sum(len(row) for row in rows)
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return json_response({"object": "list", "data": data, "model": embedder.name, "usage": usage})

    @router.post("/embed", response_model=EmbedResponse, responses=responses(*BODY_ERRORS, 502, 503))
    async def embed(body: EmbedRequest, embedder: EmbedderDep) -> Response:
        """Embeddings of a list of texts; unit length unless `normalize` is false."""
        vectors = await embedder.embed(body.texts, normalize=body.normalize)
        return json_response({"embeddings": vectors, "dim": embedder.dim, "model": embedder.name})

    return router
