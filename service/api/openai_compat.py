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
from service.settings import Settings

PREFIX = "/v1/"


def text_or_token_ids(settings: Settings) -> Any:
    """OpenAI's `input`: a text, a list of texts, one token array or a list of them. Token arrays are tiktoken's
    cl100k_base ids, as LangChain's OpenAIEmbeddings sends by default: each is decoded to its text
    (service/token_ids.py) before the text rules apply, and an id cl100k_base does not define is a 422 naming
    `input[i]`. At most O2V_MAX_TOKEN_IDS ids in one request."""
    one, many = limits.text(settings), limits.texts(settings)
    token = {"type": "integer", "minimum": 0, "maximum": token_ids.max_id(), "not": {"enum": token_ids.undefined_ids()}}
    ids_schema = {"type": "array", "minItems": 1, "items": token}
    many_ids = {"type": "array", "minItems": 1, "maxItems": settings.limits.max_request_texts, "items": ids_schema}
    schema = {"anyOf": [TypeAdapter(one).json_schema(), TypeAdapter(many).json_schema(), ids_schema, many_ids]}

    def as_list(value: Any) -> Any:
        value = [value] if isinstance(value, str) or _is_ids(value) else value
        if isinstance(value, list):
            count = sum(len(item) for item in value if isinstance(item, list))
            if count > settings.limits.max_token_ids:
                limit = settings.limits.max_token_ids
                raise ValueError(f"{count} token ids in one request, the limit is {limit} (O2V_MAX_TOKEN_IDS)")
        return value

    def decoded(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        ids = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]  # JSON Schema's integer
        if not all(type(token) is int for token in ids):
            raise ValueError("a token array holds integers only (cl100k_base ids)")
        try:
            return token_ids.decode(ids)
        except token_ids.UndecodableIds as exc:
            raise ValueError(str(exc)) from exc

    item = Annotated[one, BeforeValidator(decoded)]
    items = Annotated[list[item], Field(min_length=1, max_length=settings.limits.max_request_texts)]
    return Annotated[items, BeforeValidator(as_list), WithJsonSchema(schema)]


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
