"""The app factory: settings + encoder → FastAPI app with the routers of ROUTERS, error handlers and metrics.

A router module exposes either `router` (an APIRouter) or `build_router(settings, encoder) -> APIRouter` when its
routes are made from the settings. Request schemas are module-level (service/api/schemas/); limits that come from
the settings are `Limit` markers (service/api/limits.py). To add a domain, import its module here and append it to
ROUTERS. What a route needs at request time comes from the app's `Services` (service/api/services.py) through the
dependencies of deps.py. `uvicorn --factory service.api.app:create_app` serves the settings of the environment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from service import __version__
from service.api import (
    collections,
    drift,
    embeddings,
    errors,
    health,
    models,
    rerank,
    sagemaker,
    similarity,
    tei,
    tokenize,
)
from service.api.auth import read_guard
from service.api.limits import BodyLimitMiddleware
from service.api.limits import install as install_limits
from service.api.metrics import MetricsMiddleware
from service.api.openai_compat import OpenAIErrorMiddleware
from service.api.render import json_response
from service.api.route_family import RouteFamilyMiddleware
from service.api.services import Services
from service.encoders import load_encoder
from service.encoders.base import INVOKE_ENDPOINT_MAX_BYTES, Encoder
from service.settings import Settings
from service.tracing import Tracing, TracingMiddleware, from_environment

ROUTERS: list[ModuleType] = [
    embeddings,
    similarity,
    rerank,
    tokenize,
    tei,
    health,
    models,
    sagemaker,
    collections,
    drift,
]


def _router(module: ModuleType, settings: Settings, encoder: Encoder) -> APIRouter:
    router = getattr(module, "router", None)
    return router if isinstance(router, APIRouter) else module.build_router(settings, encoder)


def keyed_schema_router() -> APIRouter:
    """/openapi.json as a read route (O2V_DOCS_OPEN false, the default with O2V_READ_API_KEY): the read guard of
    every route applies. /docs and /redoc are not served then: a browser cannot send the key with the page's own
    fetch of the schema."""
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    def openapi(request: Request) -> Response:
        return json_response(request.app.openapi())

    return router


def create_app(
    settings: Settings | None = None, encoder: Encoder | None = None, tracing: Tracing | None = None
) -> FastAPI:
    """An app serving `encoder` (default: the one the settings name, loaded now and closed on shutdown), traced by
    `tracing` (default: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else off; service/tracing.py)."""
    settings = settings or Settings()
    tracing = tracing or from_environment()
    owns_encoder = encoder is None
    encoder = encoder or load_encoder(settings)
    services = Services.of(settings, encoder)

    def body_limit(path: str) -> int:
        """SageMaker's own 6 MiB on /invocations (and the runtime API's /endpoints/{name}/invocations)."""
        sagemaker_path = path == "/invocations" or (path.startswith("/endpoints/") and path.endswith("/invocations"))
        return INVOKE_ENDPOINT_MAX_BYTES if sagemaker_path else settings.limits.max_body_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with services.running():
                yield
        finally:
            if owns_encoder:
                encoder.close()
            tracing.shutdown()

    docs_open = settings.read_api_key is None if settings.docs_open is None else settings.docs_open
    app = FastAPI(
        title="object2vec-service",
        version=__version__,
        description="Object2Vec sentence embeddings: OpenAI-style embeddings, similarity, SageMaker contract.",
        lifespan=lifespan,
        dependencies=read_guard(settings),  # every route, so a new one is guarded by default (auth.py)
        openapi_url="/openapi.json" if docs_open else None,
        docs_url="/docs" if docs_open else None,
        redoc_url="/redoc" if docs_open else None,
    )
    if not docs_open:
        app.include_router(keyed_schema_router())
    app.state.settings = settings  # what the error handlers and the API-key guard read, on any app
    app.state.services = services
    errors.install(app)
    install_limits(app, services.limits)  # the request schemas' limits (service/api/limits.py)
    app.add_middleware(RouteFamilyMiddleware)  # the drift monitor's embedding windows are per route family
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    app.add_middleware(OpenAIErrorMiddleware)  # outside every error source: /v1/* errors get OpenAI's fields
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)  # it counts the 413s too
    app.add_middleware(TracingMiddleware, tracing=tracing)  # outermost: the request span holds everything
    for module in ROUTERS:
        if module is not drift or settings.drift.enabled:
            app.include_router(_router(module, settings, encoder))
    return app
