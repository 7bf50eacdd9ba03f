"""What OpenAI's clients expect of /v1/*: their error fields and status, model names they may send, and token-id
inputs (OpenAI's tiktoken ids, decoded to text: our model reads its own WordPiece vocabulary).

Every error source (body limit, auth, validation, domain errors, unknown routes) answers the house shape
`{"error": {"type", "message", "field"}}`; rather than teach each of them about OpenAI, one middleware rewrites the
error answers of /v1/* paths: `type` becomes OpenAI's class (`invalid_request_error` for 4xx, `server_error` for 5xx),
`code` carries the house type (`validation_error`, `overloaded`, `model_not_found`, ...), `param` the field, and
`field` stays, so a client of either convention finds what it reads. A 422 becomes OpenAI's 400 for an invalid
request (its SDK raises BadRequestError for it, as against OpenAI itself).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import orjson
from pydantic import BeforeValidator, Field, TypeAdapter, WithJsonSchema
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import token_ids
from service.api import limits

PREFIX = "/v1/"


def _token_ids_listed(value: Any) -> Any:
    """One text or token array as a list of them; at most O2V_MAX_TOKEN_IDS ids in one request."""
    value = [value] if isinstance(value, str) or _is_ids(value) else value
    if isinstance(value, list):
        count = sum(len(item) for item in value if isinstance(item, list))
        limit = limits.current().max_token_ids
        if count > limit:
            raise ValueError(f"{count} token ids in one request, the limit is {limit} (O2V_MAX_TOKEN_IDS)")
    return value


def _decoded(value: Any) -> Any:
    """A token array as its cl100k_base text (a text passes as it is)."""
    if not isinstance(value, list):
        return value
    ids = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]  # JSON Schema's integer
    if not all(type(token) is int for token in ids):
        raise ValueError("a token array holds integers only (cl100k_base ids)")
    try:
        return token_ids.decode(ids)
    except token_ids.UndecodableIds as exc:
        raise ValueError(str(exc)) from exc


_TOKEN = {"type": "integer", "minimum": 0, "maximum": token_ids.MAX_ID, "not": {"enum": token_ids.UNDEFINED_IDS}}
_IDS_SCHEMA = {"type": "array", "minItems": 1, "items": _TOKEN}
_MANY_IDS = {"type": "array", "minItems": 1, "items": _IDS_SCHEMA, **limits.stated(maxItems="max_batch_size")}
_TEXT_OR_IDS_SCHEMA = {
    "anyOf": [
        TypeAdapter(limits.Text).json_schema(),
        TypeAdapter(limits.Texts).json_schema(),
        _IDS_SCHEMA,
        _MANY_IDS,
    ]
}
TextOrTokenIds = Annotated[
    list[Annotated[limits.Text, BeforeValidator(_decoded)]],
    Field(min_length=1),
    limits.Limit("maxItems", "max_batch_size"),
    BeforeValidator(_token_ids_listed),
    WithJsonSchema(_TEXT_OR_IDS_SCHEMA),
]
"""OpenAI's `input`: a text, a list of texts, one token array or a list of them. Token arrays are tiktoken's
cl100k_base ids, as LangChain's OpenAIEmbeddings sends by default: each is decoded to its text
(service/token_ids.py) before the text rules apply, and an id cl100k_base does not define is a 422 naming
`input[i]`. At most O2V_MAX_TOKEN_IDS ids in one request."""


def _is_ids(value: Any) -> bool:
    """A token array: integers (7 or 7.0, as JSON Schema reads them; not true)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(type(v) is int or (isinstance(v, float) and v.is_integer()) for v in value)
    )


def openai_error(body: dict[str, Any], status: int) -> dict[str, Any]:
    """The house error body with OpenAI's fields added (see the module docstring)."""
    error = body["error"]
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {**error, "type": kind, "param": error.get("field"), "code": error.get("type")}}


class OpenAIErrorMiddleware:
    """Rewrites the JSON error answers of /v1/* paths with `openai_error`; every other answer passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the whole body is read
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):  # else passed on as it is
                body = orjson.dumps(openai_error(orjson.loads(body), start["status"]))
            headers = MutableHeaders(scope=start)
            headers["content-length"] = str(len(body))
            if start["status"] == 422:
                start = {**start, "status": 400}
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)
