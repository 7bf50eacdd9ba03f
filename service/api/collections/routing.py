"""What the collection routers share: the router that registers their operations, the path parameter, OpenAPI
links, running index calls off the event loop, and answering through the response models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel
from starlette.responses import Response

from service.api.auth import require_api_key
from service.api.errors import responses
from service.api.jobs import out_of_files_is_503
from service.api.render import json_response
from service.index.names import NAME_RE
from service.tracing import span

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])
Name = Annotated[str, Path(pattern=f"^{NAME_RE.pattern}$", description="collection name")]
BY_NAME = {"name": "$request.path.name"}
WRITE = [Depends(require_api_key)]
"""The dependencies of every route that changes a collection."""


def links(statuses: tuple[str, ...], *by_name: str, **targets: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links from one answer to the operations (by operationId) that can follow it: `by_name` take the
    collection's name from this request's path, `targets` the parameters given. Clients and stateful testers
    (schemathesis) chain a created collection into its routes."""
    found = {
        op: {"operationId": op, "parameters": params}
        for op, params in {**dict.fromkeys(by_name, BY_NAME), **targets}.items()
    }
    return {"responses": {status: {"links": found} for status in statuses}}


async def call(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking service.index call in a worker thread; its CollectionErrors reach the shared handler."""
    with out_of_files_is_503(), span("index", **{"o2v.operation": getattr(getattr(fn, "func", fn), "__name__", "")}):
        return await asyncio.to_thread(fn, *args)


class CollectionRouter(APIRouter):
    """An APIRouter whose operations are named after their handlers: the operationIds that `links` point at."""

    def operation(
        self, method: str, path: str, model: Any, *errors: int, write: bool = False, **options: Any
    ) -> Callable[[H], H]:
        """Register the decorated handler for `method` `path`, answering `model` (None: no body), with the error
        statuses `errors` documented; `write`: it changes a collection, so it takes the API key (WRITE)."""

        def register(handler: H) -> H:
            self.add_api_route(
                path,
                handler,
                methods=[method],
                response_model=model,
                responses=responses(*errors),
                operation_id=handler.__name__,
                dependencies=WRITE if write else None,
                **options,
            )
            return handler

        return register

    def deletion(self, path: str) -> Callable[[H], H]:
        """A DELETE: 204 with no body once done, 404 when there was nothing to delete."""
        return self.operation("DELETE", path, None, 401, 404, 422, status_code=204, write=True)


def answer(body: BaseModel, status: int = 200) -> Response:
    """The answer as its response model has it, fields left unset (an item's vector not asked for) left out;
    rendered by orjson like every answer of the app."""
    return json_response(body.model_dump(exclude_unset=True), status=status)
