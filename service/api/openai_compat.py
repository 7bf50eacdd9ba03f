"""What OpenAI's clients expect of /v1/*: their error fields, model names they may send, and a clear refusal of
token-id inputs (OpenAI's tiktoken ids mean other words in our WordPiece vocabulary).

Every error source (body limit, auth, validation, domain errors, unknown routes) answers the house shape
`{"error": {"type", "message", "field"}}`; rather than teach each of them about OpenAI, one middleware rewrites the
error answers of /v1/* paths: `type` becomes OpenAI's class (`invalid_request_error` for 4xx, `server_error` for 5xx),
`code` carries the house type (`validation_error`, `overloaded`, `model_not_found`, ...), `param` the field, and
`field` stays, so a client of either convention finds what it reads.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/v1/"
TOKEN_IDS_REFUSED = (
    "token ids are not accepted: they would be read in this model's own vocabulary (WordPiece), which is not "
    "OpenAI's (tiktoken), and embed other words; send the text instead (LangChain's OpenAIEmbeddings: "
    "check_embedding_ctx_length=False)"
)


def refuse_token_ids(value: Any) -> Any:
    """OpenAI's `input` may be token ids, `[15339, 1917]` or `[[15339, 1917]]`: refuse them with the reason."""
    if _is_ids(value) or (isinstance(value, list) and value and all(_is_ids(item) for item in value)):
        raise ValueError(TOKEN_IDS_REFUSED)
    return value


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(v) is int for v in value)


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
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)
