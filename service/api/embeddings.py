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
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, StrictBool
from starlette.responses import Response

from service.api import limits
from service.api.deps import EmbedderDep, model_embedder
from service.api.errors import BODY_ERRORS, ApiError, responses, validated
from service.api.openai_compat import text_or_token_ids
from service.api.render import json_response
from service.encoders.base import Encoder, l2_normalize
from service.encoders.embedder import Embedder
from service.settings import Settings
from service.text import Direction, Encoded
from service.vectors import pair_cosines

TRUNCATED_HEADER = "X-Truncated-Inputs"
ONE_OF_TEXTS_INPUTS: list[JsonValue] = [
    {"required": ["texts"], "not": {"required": ["inputs"]}},
    {"required": ["inputs"], "not": {"required": ["texts"]}},
]


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
    """TEI's truncation fields (TEI spells the directions "Right" and "Left"; both spellings are read)."""

    truncate: StrictBool | None = Field(
        True,
        description="cut a text longer than the model's max_seq_len tokens (null: the server's default, true); "
        "false: such a text is a 422",
    )
    truncation_direction: Literal["right", "left", "Right", "Left"] = Field(
        "right", description="right: the end is cut; left: the start is"
    )

    @property
    def direction(self) -> Direction:
        return "left" if self.truncation_direction.lower() == "left" else "right"


def _encode(vector: np.ndarray, encoding: str) -> np.ndarray | str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode() if encoding == "base64" else vector


def _not_quantised(kind: object) -> object:
    if kind in ("int8", "uint8", "binary", "ubinary"):
        raise ValueError(f"{kind} embeddings are not served here: float and base64 are")
    return kind


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its nested models written in place, for a route that states its body itself."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            return (
                resolve(defs[ref.rsplit("/", 1)[1]])
                if ref.startswith("#/$defs/")
                else {key: resolve(value) for key, value in node.items()}
            )
        return [resolve(item) for item in node] if isinstance(node, list) else node

    return resolve(schema)


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
        of O2V_MODEL_ALIASES (others: 404 model_not_found). Token arrays (cl100k_base) are decoded to their text."""

        model_config = ConfigDict(extra="ignore")
        input: text_or_token_ids(settings)
        model: str | None = None
        encoding_format: Literal["float", "base64"] = "float"
        user: str | None = None

    class EmbedRequest(Shaped):
        """Ours (`texts`, answered `{"embeddings", "dim", "model", "truncated"}`) or TEI's (`inputs`, one text or a
        list, answered with TEI's bare list of embeddings): exactly one of the two."""

        model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": ONE_OF_TEXTS_INPUTS})
        # absent is None (defaults are not validated), an explicit null is refused as the schema says
        texts: limits.texts(settings) = Field(None, description="the texts (our shape)")
        inputs: limits.text_or_texts(settings) = Field(None, description="a text or a list of them (TEI's shape)")
        normalize: StrictBool = Field(True, description="scale each embedding to unit length")
        prompt_name: None = Field(None, description="TEI's; this model has no prompts, so only null is accepted")
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

    class CohereEmbedRequest(BaseModel):
        """Cohere's v2 embed request, texts only. One encoder embeds queries and documents alike, so `input_type`
        changes nothing; quantised types are refused rather than made up (Cohere does not publish its scales)."""

        model_config = ConfigDict(extra="forbid")
        model: str | None = Field(None, description="accepted and ignored, as Cohere's clients send it")
        texts: limits.texts(settings)
        input_type: Literal["search_document", "search_query", "classification", "clustering"] | None = None
        embedding_types: list[Annotated[Literal["float", "base64"], BeforeValidator(_not_quantised)]] = Field(
            ["float"], min_length=1, description="float and base64; Cohere's quantised types are a 422"
        )
        truncate: Literal["NONE", "START", "END"] = Field(
            "END", description="END: the end of a long text is cut, START: its start; NONE: it is a 422"
        )
        output_dimension: limits.whole_number(1, encoder.dim) | None = Field(
            None, description="as `dimensions`: the first k values, re-normalised"
        )
        priority: limits.whole_number(0, 1 << 31) | None = Field(None, description="accepted; requests run in order")

    @router.post("/v2/embed", responses=responses(*BODY_ERRORS, 502, 503))
    async def cohere_embed(body: CohereEmbedRequest, embedder: EmbedderDep) -> Response:
        """Cohere's v2 embed (`ClientV2(base_url=...).embed`): unit-length embeddings by type, float or base64."""
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

    class SimilarityParameters(Truncation):
        model_config = ConfigDict(extra="forbid")
        prompt_name: None = Field(None, description="TEI's; this model has no prompts, so only null is accepted")

    class SimilarityInput(BaseModel):
        model_config = ConfigDict(extra="forbid")
        source_sentence: limits.text(settings)
        sentences: limits.texts(settings)

    class SimilarityRequest(BaseModel):
        """TEI's sentence-similarity request, as huggingface_hub's `sentence_similarity` sends it."""

        model_config = ConfigDict(extra="forbid")
        inputs: SimilarityInput
        parameters: SimilarityParameters | None = None

    root_body = {"oneOf": [inline_schema(EmbedRequest), inline_schema(SimilarityRequest)]}

    @router.post(
        "/",
        response_model=list[list[float]] | list[float] | EmbedResponse,
        responses=responses(*BODY_ERRORS, 404, 502, 503),
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": root_body}}}},
    )
    async def root(
        payload: Annotated[dict[str, JsonValue], Body()], request: Request, embedder: EmbedderDep
    ) -> Response:
        """TEI's root route for an embedding model (huggingface_hub's `InferenceClient(model=URL)`): a body whose
        `inputs` is `{"source_sentence", "sentences"}` gets the cosine of the source with each sentence, TEI's
        sentence similarity; any other body is an /embed request."""
        if not isinstance(payload.get("inputs"), dict):
            return await embed(validated(EmbedRequest, payload), request)
        body = validated(SimilarityRequest, payload)
        texts = [body.inputs.source_sentence, *body.inputs.sentences]

        def named(i: int) -> str:
            return f"inputs.sentences[{i - 1}]" if i else "inputs.source_sentence"

        vectors, _, _ = await embed_truncating(embedder, texts, body.parameters or Truncation(), named)
        return json_response(pair_cosines(vectors[1:], vectors[:1]))

    return router
