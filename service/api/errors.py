"""Every error answer in one shape, `{"error": {"type", "message", "field"}}`, and the handlers that produce it.

Statuses: 400 unreadable body, 401 API key, 404 unknown route or resource, 405 method, 409 conflict, 413 body over
its limit, 415 body media type, 422 a field breaks its rule, 502 the backend answered nonsense, 503 overloaded or
backend down (with Retry-After). Bad input never becomes a 500. Domain exceptions that carry `status`, `message`
and `field` (and optionally `type`), as EncoderError and CollectionError do, are answered as they say; add another
domain's base class to DOMAIN_ERRORS to get the same treatment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response

from service.api.render import json_response
from service.encoders.base import EncoderError
from service.index.errors import CollectionError

log = logging.getLogger(__name__)

TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}
DOMAIN_ERRORS: tuple[type[Exception], ...] = (EncoderError, CollectionError)


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """Raised by routes and dependencies for an error answer of the shared shape."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.type = type or TYPES.get(status, "error")
        self.headers = dict(headers or {})


BODY_ERRORS = (400, 413, 415, 422)  # what any route reading a JSON body can answer


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses a route can answer."""
    return {status: {"model": ErrorBody, "description": TYPES[status].replace("_", " ")} for status in statuses}


def error_response(error: ApiError) -> Response:
    body = {"error": {"type": error.type, "message": error.message, "field": error.field}}
    return json_response(body, status=error.status, headers=error.headers)


def field_path(loc: Sequence[str | int]) -> str | None:
    """('body', 'pairs', 0, 1) → 'pairs[0][1]'; the location prefix (body/query/path) is dropped."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def from_validation_errors(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """The first of pydantic's errors as a 422 naming its field (or 400 when the body is not JSON at all)."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error")
        return ApiError(400, "the body is not valid JSON" + (f": {detail}" if detail else ""), field="body")
    field = field_path(first.get("loc", ()))
    return ApiError(422, f"{first.get('msg', 'invalid value')}{more}", field=field or "body")


def _answer(request: Request, error: ApiError) -> Response:
    """Every 503 says when to come back."""
    if error.status == 503:
        error.headers.setdefault("Retry-After", str(request.app.state.settings.retry_after_s))
    return error_response(error)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _answer(request, exc)


async def _domain_error(request: Request, exc: Exception) -> Response:
    error = ApiError(
        getattr(exc, "status", 500),
        getattr(exc, "message", str(exc)),
        getattr(exc, "field", None),
        getattr(exc, "type", None),
    )
    return _answer(request, error)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    media = request.headers.get("content-type", "")
    first = errors[0] if errors else {}
    if tuple(first.get("loc", ())) == ("body",) and first.get("type") != "missing" and "json" not in media:
        message = f"send the body as JSON (Content-Type: application/json), not {media!r}"
        return error_response(ApiError(415, message, "Content-Type"))
    return error_response(from_validation_errors(errors))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    field = "body" if exc.status_code == 413 else None
    return _answer(request, ApiError(exc.status_code, str(exc.detail), field, headers=exc.headers))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(ApiError(500, "internal error; the server log has the details"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for cls in DOMAIN_ERRORS:
        app.add_exception_handler(cls, _domain_error)
    app.add_exception_handler(Exception, _unexpected)
