"""Route families: the bounded names the drift monitor keeps one embedding window for, by HTTP path (the drift
room knows the names, not the paths). `RouteFamilyMiddleware` puts each request's embeddings in its family."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service.drift.embeddings import INGEST, in_family

FAMILIES = {
    **dict.fromkeys(["/v1/embeddings", "/embed", "/", "/v2/embed"], "embeddings"),  # "/": TEI's root route
    "/similarity": "similarity",
    **dict.fromkeys(["/rerank", "/v1/rerank", "/v2/rerank"], "rerank"),
}
PREFIX_FAMILIES = {"/collections/": "collections", "/invocations": "sagemaker", "/endpoints/": "sagemaker"}


def route_family(path: str) -> str:
    """A bounded name per group of routes that embed: embeddings, similarity, collections, rerank, sagemaker, other;
    `ingest` for item upserts, which the monitor does not watch."""
    if path in FAMILIES:
        return FAMILIES[path]
    if path.startswith("/collections/") and path.rstrip("/").endswith("/items"):
        return INGEST
    return next((family for prefix, family in PREFIX_FAMILIES.items() if path.startswith(prefix)), "other")


class RouteFamilyMiddleware:
    """Sets the request's route family for the embeddings it causes (a context variable: no argument threading)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with in_family(route_family(scope.get("path", ""))):
            await self.app(scope, receive, send)
