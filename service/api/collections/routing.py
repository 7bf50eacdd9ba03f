"""What the collection routers share: the path parameter, OpenAPI links, running index calls off the event loop,
and the answer shapes of items and hits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path

from service.api.auth import require_api_key
from service.api.jobs import out_of_files_is_503
from service.index.base import Hit, Item
from service.index.names import NAME_RE
from service.tracing import span

T = TypeVar("T")
Name = Annotated[str, Path(pattern=f"^{NAME_RE.pattern}$", description="collection name")]
BY_NAME = {"name": "$request.path.name"}
WRITE = [Depends(require_api_key)]
"""The dependencies of every route that changes a collection."""


def links(statuses: tuple[str, ...], **targets: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links from one answer to the operations (by operationId) that can follow it, with the parameters they
    take from this request: clients and stateful testers (schemathesis) chain a created collection into its routes."""
    found = {op: {"operationId": op, "parameters": params} for op, params in targets.items()}
    return {"responses": {status: {"links": found} for status in statuses}}


async def call(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking service.index call in a worker thread; its CollectionErrors reach the shared handler."""
    with out_of_files_is_503(), span("index", **{"o2v.operation": getattr(getattr(fn, "func", fn), "__name__", "")}):
        return await asyncio.to_thread(fn, *args)


def hit_out(hit: Hit) -> dict[str, Any]:
    return {"id": hit.id, "score": hit.score, "text": hit.text, "metadata": hit.metadata}


def item_out(item: Item) -> dict[str, Any]:
    out = {
        "id": item.id,
        "text": item.text,
        "metadata": item.metadata,
        "vector_source": "caller" if item.given else "model",
    }
    if item.vector is not None:
        out["vector"] = item.vector.tolist()
    return out
