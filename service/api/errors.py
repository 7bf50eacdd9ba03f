"""Every error answer in one shape, `{"error": {"type", "message", "field"}}`, and the handlers that produce it.

Statuses: 400 unreadable body, 401 API key, 404 unknown route or resource, 405 method, 409 conflict, 413 body over
its limit, 415 body media type, 422 a field breaks its rule, 502 the backend answered nonsense, 503 overloaded or
backend down (with Retry-After), 507 the disk is full. Bad input never becomes a 500. Every ServiceError
(service/errors.py: the encoder, collection and drift errors, and ApiError here) is answered by one handler as it
says: its own status, type, message and field.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import Schema
from pydantic import BaseModel, ValidationError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.render import json_response
from service.errors import STATUS_TYPES, ServiceError, exit_code_of, storage_failure

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(ServiceError):
    """Raised by routes and dependencies for an HTTP answer no domain error names: its status is the instance's, and
    it may carry headers."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, field)
        self.status = status
        self.type = type or STATUS_TYPES.get(status, "error")
        self.exit_code = exit_code_of(status)
        self.headers = dict(headers or {})


BODY_ERRORS = (400, 413, 415, 422)  # what any route reading a JSON body can answer
RETRY_AFTER_S = 1
"""Retry-After of a 503 that does not set its own: the causes (a full encode queue, a store write lock, a backend
retrying) clear in milliseconds to seconds, and a client that honours the header should come back soon, once a second
rather than in a tight loop; a longer outage answers 503 again, with the same advice."""


def _components(model: type[BaseModel]) -> dict[str, Any]:
    """`model` and the models it holds as FastAPI writes a response model into the components of its document."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    found = {**schema.pop("$defs", {}), model.__name__: schema}
    return {
        name: jsonable_encoder(Schema.model_validate(entry), by_alias=True, exclude_none=True)
        for name, entry in found.items()
    }


ERROR_SCHEMAS = _components(ErrorBody)
"""What `responses` refers to, computed once a process (FastAPI would build it again for each route of each app)."""


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses a route can answer: a reference to ErrorBody, which
    `install` adds to the document's components. Not `{"model": ErrorBody}`: FastAPI builds a pydantic TypeAdapter
    for each such entry of each route of each app (about 180 an app, two thirds of the app's route setup, which its
    first request pays), only to write that same reference."""
    return {
        status: {
            "description": STATUS_TYPES[status].replace("_", " "),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }
        for status in statuses
    }


def documented(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with ErrorBody's schemas among its components (kept in FastAPI's name order)."""
    components = schema.setdefault("components", {})
    components["schemas"] = dict(sorted({**components.get("schemas", {}), **ERROR_SCHEMAS}.items()))
    return schema


def _utf8(text: str | None) -> str | None:
    """Text an answer can carry: a lone surrogate echoed from the request (a field name, a key) is escaped."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(error: ServiceError) -> Response:
    body = {"error": {"type": error.type, "message": _utf8(error.message), "field": _utf8(error.field)}}
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


def validated(model: type[BaseModel], payload: Any) -> Any:
    """`payload` as `model`, or the 422 naming its first bad field: for routes that pick their schema by the body."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise from_validation_errors(exc.errors()) from exc


async def _service_error(request: Request, exc: Exception) -> Response:
    """Any ServiceError as it says; every 503 says when to come back."""
    assert isinstance(exc, ServiceError)
    if exc.status == 503 and "Retry-After" not in exc.headers:
        exc.headers = {**exc.headers, "Retry-After": str(RETRY_AFTER_S)}
    return error_response(exc)


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
    return await _service_error(request, ApiError(exc.status_code, str(exc.detail), field, headers=exc.headers))


async def _storage_error(request: Request, exc: Exception) -> Response:
    """A full disk (507) or a database locked past its timeout (503 + Retry-After) wherever it surfaces, so no route
    answers either as a 500; any other OSError or SQLite error is the 500 it is."""
    mapped = storage_failure(exc)
    if mapped is None:
        return await _unexpected(request, exc)
    log.warning("%s %s: %s (%s)", request.method, request.url.path, mapped.message, exc)
    return await _service_error(request, mapped)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(ApiError(500, "internal error; the server log has the details"))


class AllowMiddleware:
    """`Allow` names every method the path serves: OPTIONS on a route's path answers 204 with it, and a 405 carries
    it (Starlette's names the methods of the first route on the path only: OPTIONS would get 405 "Allow: PUT" on
    a path that serves GET, PUT and DELETE). A path no route serves stays a 404 for any method."""

    METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")

    def __init__(self, app: ASGIApp, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes

    def allowed(self, scope: Scope) -> str | None:
        """Each method is asked of every route through the public `matches`, which FastAPI's included routers
        answer for their own routes too, so this holds however a FastAPI version nests them."""
        methods = [
            method
            for method in self.METHODS
            if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in self.routes())
        ]
        return ", ".join([*methods, "OPTIONS"]) if methods else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and (allow := self.allowed(scope)) is not None:
            await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = MutableHeaders(scope=message)
                headers["Allow"] = self.allowed(scope) or headers.get("Allow", "")
            await send(message)

        await self.app(scope, receive, send_with_allow)


def install(app: FastAPI) -> None:
    app.add_middleware(AllowMiddleware, routes=lambda: app.router.routes)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document with ErrorBody's components, merged once: FastAPI keeps the document it built."""
        if app.openapi_schema is None:
            app.openapi_schema = documented(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(sqlite3.Error, _storage_error)
    app.add_exception_handler(Exception, _unexpected)
