"""POST /tokenize: the model's tokens of each text (TEI's shape) and their count, so callers can budget texts
against the max_seq_len the model reads (longer texts are cut: see /embed's `truncate`)."""

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


class Tokenized(BaseModel):
    count: int = Field(description="tokens of the text, specials included when asked for")
    truncated: bool = Field(description="the text has more tokens than the model reads (max_seq_len)")
    tokens: list[TokenInfo]


class TokenizeResponse(BaseModel):
    model: str
    max_seq_len: int
    results: list[Tokenized]


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["tokenize"])

    class TokenizeRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inputs: limits.text_or_texts(settings)
        add_special_tokens: StrictBool = Field(
            False, description="add [CLS]/[SEP]; the model reads texts without them, so the default is false"
        )

    @router.post("/tokenize", response_model=TokenizeResponse, responses=responses(*BODY_ERRORS))
    async def tokenize(body: TokenizeRequest, embedder: EmbedderDep) -> Response:
        """Each input's tokens, uncut, with their character spans."""
        limit = embedder.max_seq_len
        results = [
            {
                "count": len(tokens),
                "truncated": sum(not t.special for t in tokens) > limit,
                "tokens": [vars(t) for t in tokens],
            }
            for tokens in await embedder.tokens(body.inputs, body.add_special_tokens)
        ]
        return json_response({"model": embedder.name, "max_seq_len": limit, "results": results})

    return router
