"""Request limits: the body-size middleware, and pydantic types built from the settings so that validation and
the OpenAPI schema state the same limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, TypeAdapter, WithJsonSchema
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import ApiError, error_response
from service.settings import Settings


def _too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))


class BodyLimitMiddleware:
    """413 for a body over `limit_for(path)` bytes: at once when Content-Length says so, else as soon as the
    bytes received pass it, so an oversized body is never held in memory whole."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await error_response(ApiError(413, _too_large(limit), field="body"))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


VISIBLE = (
    r"[^\u0000-\u0020\u007f-\u00a0\u00ad\u0300-\u036f\u0600-\u0605\u061c\u06dd\u070f\u1680\u180b-\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufe00-\ufe0f\ufeff"
    r"\ufff9-\ufffb\ufffd]"
)
"""One character the tokenizer keeps: not whitespace, a control or format character (zero-width, BOM, soft hyphen,
bidi marks), a lone Latin combining mark, private use or U+FFFD. A text of those alone has no token and embedded to
one constant vector (two of them: cosine 1.0). Checked against the bundled tokenizer over the BMP; lone combining
marks of other scripts and astral tag or private-use characters still pass (they embed as [UNK], like an emoji).
The same pattern (ECMA and Python read it alike) goes into the OpenAPI schema."""
_VISIBLE = re.compile(VISIBLE)


def visible(value: str) -> str:
    """The text unchanged, or ValueError when it has no visible character (pydantic names the field: `input[3]`)."""
    if _VISIBLE.search(value) is None:
        raise ValueError("the text has nothing to embed: only whitespace, control or format characters")
    return value


def _json_integer(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


def whole_number(low: int, high: int) -> Any:
    """JSON Schema's `integer` from low to high: 74 and 74.0, not `true` or "74" (pydantic's lax int reads both as
    numbers). The bounds sit before the validator, so the schema keeps its minimum and maximum."""
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(_json_integer)]


def text(settings: Settings) -> Any:
    """A string of 1 to O2V_MAX_TEXT_CHARS characters, at least one of them visible (`visible`)."""
    return Annotated[
        str,
        StringConstraints(min_length=1, max_length=settings.limits.max_text_chars),
        AfterValidator(visible),
        Field(json_schema_extra={"pattern": VISIBLE}),
    ]


def texts(settings: Settings) -> Any:
    """1 to O2V_MAX_BATCH_SIZE texts."""
    one = text(settings)
    return Annotated[list[one], Field(min_length=1, max_length=settings.limits.max_request_texts)]


def text_or_texts(settings: Settings) -> Any:
    """OpenAI's `input`: one text or a list of them, validated as a list."""
    one, many = text(settings), texts(settings)
    schema = {"anyOf": [TypeAdapter(one).json_schema(), TypeAdapter(many).json_schema()]}
    return Annotated[many, BeforeValidator(lambda v: [v] if isinstance(v, str) else v), WithJsonSchema(schema)]
