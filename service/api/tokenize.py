"""POST /tokenize: the default model's tokens of each text, in TEI's request and answer shapes (a list of token
lists), so callers can budget texts against the max_seq_len the model reads (GET /info: `max_input_length`; longer
texts are cut: see /embed's `truncate`). POST /decode, TEI's inverse, is in tei.py."""

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import DefaultEmbedderDep
from service.api.errors import BODY_ERRORS, responses
from service.api.render import json_response
from service.api.schemas.tokenize import TokenInfo, TokenizeRequest

router = APIRouter(tags=["tokenize"])


@router.post("/tokenize", response_model=list[list[TokenInfo]], responses=responses(*BODY_ERRORS))
async def tokenize(body: TokenizeRequest, embedder: DefaultEmbedderDep) -> Response:
    """Each input's tokens in the default model's vocabulary (the model that would embed them), uncut, with their
    character spans (TEI's answer)."""
    tokens = await embedder.tokens(body.inputs, body.add_special_tokens)
    return json_response([[vars(t) for t in row] for row in tokens])
