"""TEI's (Text Embeddings Inference) routes beyond /embed, /rerank, /tokenize and POST / (embeddings.py, rerank.py,
tokenize.py): GET /info and POST /decode, in the shapes of TEI's OpenAPI document (docs/openapi.json there)."""

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from service import __version__
from service.api.deps import ServicesDep
from service.api.errors import BODY_ERRORS, responses
from service.api.render import json_response
from service.api.schemas.tei import DecodeRequest, Info
from service.encoders.base import Encoder
from service.encoders.batching import ENCODE_BATCH
from service.encoders.onnx import MAX_BATCH_TOKENS
from service.settings import Settings

router = APIRouter(tags=["tei"])


def info(settings: Settings, encoder: Encoder) -> dict[str, Any]:
    """TEI's Info of the served model under `settings`."""
    network = encoder.model.hp.enc0_network
    return {
        "model_id": encoder.name,
        "model_sha": None,
        "model_dtype": "float32",
        "model_type": {"embedding": {"pooling": "mean" if network == "pooled_embedding" else network}},
        "max_concurrent_requests": settings.max_queued_texts,
        "max_input_length": encoder.model.max_seq_len("in0"),
        "max_batch_tokens": MAX_BATCH_TOKENS,
        "max_batch_requests": ENCODE_BATCH,
        "max_client_batch_size": settings.limits.max_request_texts,
        "auto_truncate": True,
        "tokenization_workers": 1,
        "version": __version__,
        "sha": None,
        "docker_label": None,
    }


@router.get("/info", response_model=Info)
async def get_info(services: ServicesDep) -> Response:
    """TEI's description of the served model and its limits."""
    return json_response(info(services.settings, services.encoder))


@router.post("/decode", response_model=list[str], responses=responses(*BODY_ERRORS))
async def decode(body: DecodeRequest, services: ServicesDep) -> Response:
    """Token ids of this model's vocabulary back to text (TEI's inverse of /tokenize): one string per id list."""
    tokenizer = services.encoder.tokenizer.tokenizer
    return json_response(tokenizer.decode_batch(body.ids, skip_special_tokens=body.skip_special_tokens))
