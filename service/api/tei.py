"""TEI's (Text Embeddings Inference) routes beyond /embed, /rerank, /tokenize and POST / (embeddings.py, rerank.py,
tokenize.py): GET /info and POST /decode, in the shapes of TEI's OpenAPI document (docs/openapi.json there)."""

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, TypeAdapter, WithJsonSchema
from starlette.responses import Response

from service import __version__
from service.api import limits
from service.api.errors import BODY_ERRORS, responses
from service.api.render import json_response
from service.encoders.base import Encoder
from service.settings import Settings


class Info(BaseModel):
    """TEI's Info; `model_type` says an embedding model and its encoder 0 (pooled_embedding: TEI's "mean")."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str
    model_type: dict[str, dict[str, str]]
    max_concurrent_requests: int
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int | None = None
    max_client_batch_size: int
    auto_truncate: bool
    tokenization_workers: int
    version: str
    sha: str | None = None
    docker_label: str | None = None


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["tei"])
    vocab = encoder.model.vocab_size("in0")
    token_id = limits.whole_number(0, vocab - 1)
    ids_row = Annotated[list[token_id], Field(min_length=1)]

    rows_schema = TypeAdapter(list[ids_row]).json_schema()
    rows_schema = {**rows_schema, "minItems": 1, "maxItems": settings.limits.max_request_texts}
    ids_schema = {"oneOf": [TypeAdapter(ids_row).json_schema(), rows_schema]}

    class DecodeRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        ids: Annotated[
            list[ids_row],
            Field(min_length=1, max_length=settings.limits.max_request_texts),
            BeforeValidator(lambda v: [v] if isinstance(v, list) and v and not isinstance(v[0], list) else v),
            WithJsonSchema(ids_schema),
        ] = Field(description="one list of token ids, or a list of them")
        skip_special_tokens: StrictBool = True

    network = encoder.model.hp.enc0_network
    info = {
        "model_id": encoder.name,
        "model_sha": None,
        "model_dtype": "float32",
        "model_type": {"embedding": {"pooling": "mean" if network == "pooled_embedding" else network}},
        "max_concurrent_requests": settings.max_queued_texts,
        "max_input_length": encoder.model.max_seq_len("in0"),
        "max_batch_tokens": settings.onnx_max_batch_tokens,
        "max_batch_requests": settings.max_encode_batch,
        "max_client_batch_size": settings.limits.max_request_texts,
        "auto_truncate": True,
        "tokenization_workers": 1,
        "version": __version__,
        "sha": None,
        "docker_label": None,
    }

    @router.get("/info", response_model=Info)
    async def get_info() -> Response:
        """TEI's description of the served model and its limits."""
        return json_response(info)

    @router.post("/decode", response_model=list[str], responses=responses(*BODY_ERRORS))
    async def decode(body: DecodeRequest) -> Response:
        """Token ids of this model's vocabulary back to text (TEI's inverse of /tokenize): one string per id list."""
        tokenizer = encoder.tokenizer.tokenizer
        return json_response(tokenizer.decode_batch(body.ids, skip_special_tokens=body.skip_special_tokens))

    return router
