"""POST /tokenize: the model's tokens of each text, in TEI's request and answer shapes (a list of token lists), so
callers can budget texts against the max_seq_len the model reads (GET /info: `max_input_length`; longer texts are
cut: see /embed's `truncate`). POST /decode, TEI's inverse, is in tei.py."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response

from service.api import limits
from service.api.deps import EmbedderDep
from service.api.errors import BODY_ERRORS, responses
from service.api.render import json_response
from service.encoders.base import Encoder
from service.settings import Settings


class TokenInfo(BaseModel):
    id: int
    text: str = Field(description="the characters of the input it stands for ([CLS]/[SEP]: the token itself)")
    start: int = Field(description="character offset in the input")
    stop: int
    special: bool


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["tokenize"])

    class TokenizeRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inputs: limits.text_or_texts(settings)
        add_special_tokens: StrictBool = Field(
            False,
            description="add [CLS]/[SEP]; the model reads texts without them, so the default is false (TEI's: true)",
        )
        prompt_name: None = Field(None, description="TEI's; this model has no prompts, so only null is accepted")

    @router.post("/tokenize", response_model=list[list[TokenInfo]], responses=responses(*BODY_ERRORS))
    async def tokenize(body: TokenizeRequest, embedder: EmbedderDep) -> Response:
        """Each input's tokens, uncut, with their character spans (TEI's answer)."""
        tokens = await embedder.tokens(body.inputs, body.add_special_tokens)
        return json_response([[vars(t) for t in row] for row in tokens])

    return router
