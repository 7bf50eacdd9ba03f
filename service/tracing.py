"""OpenTelemetry spans of a request's way through the service: request → tokenize → queue → encoder → index.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; then spans go to that OTLP/HTTP
collector, with the usual OTEL_* variables (OTEL_SERVICE_NAME, headers, ...). The opentelemetry packages are the
optional extra `tracing` and are imported only then, so serving never needs them. Each app has its own provider
(none is installed globally), and TracingMiddleware makes the app's Tracing the current one for the request, so code
anywhere below (the embedder, the collection routes) opens its spans with `span(...)` without being handed anything;
outside a traced request `span` does nothing.

Queue and encoder spans are recorded after the fact with their real start and end (`record`): the micro-batcher
runs one encoder call for several requests, on its own task, so each request gets spans for its own wait and for
the batch call its rows went into (`o2v.batch_rows` says how many rows it shared with).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SCOPE = "object2vec-service"


class Tracing:
    """An app's tracer and its provider, or nothing (tracing off)."""

    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self.tracer = tracer
        self.provider = provider

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        if self.tracer is None:
            yield None
            return
        with self.tracer.start_as_current_span(name, attributes=attributes) as opened:
            yield opened

    def record(self, name: str, start_ns: int, end_ns: int, **attributes: Any) -> None:
        """A span that already happened, child of the current one."""
        if self.tracer is not None:
            self.tracer.start_span(name, start_time=start_ns, attributes=attributes).end(end_time=end_ns)

    def shutdown(self) -> None:
        """Flush what is queued for export."""
        if self.provider is not None:
            self.provider.shutdown()


OFF = Tracing()
_current: ContextVar[Tracing] = ContextVar("o2v_tracing", default=OFF)


def current() -> Tracing:
    return _current.get()


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span under the current request's, when its app traces; else nothing happens."""
    return _current.get().span(name, **attributes)


def with_exporter(exporter: Any, batch: bool = True) -> Tracing:
    """Tracing to `exporter` (an OTLP exporter; an in-memory one in tests, unbatched)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SCOPE)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    return Tracing(provider.get_tracer(SCOPE), provider)


def from_environment() -> Tracing:
    """OTLP/HTTP export when an OTLP endpoint variable is set, else OFF (opentelemetry is then never imported)."""
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return OFF
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry is not installed: pip install '.[tracing]'")
        return OFF
    return with_exporter(OTLPSpanExporter())


class TracingMiddleware:
    """One span per HTTP request, named by its route template (bounded names, as the metrics labels), with the
    app's Tracing made current for everything the request runs."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tracing.enabled:
            await self.app(scope, receive, send)
            return
        token = _current.set(self.tracing)
        try:
            with self.tracing.span(scope["method"], **{"http.request.method": scope["method"]}) as request_span:

                async def send_status(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        request_span.set_attribute("http.response.status_code", message["status"])
                    await send(message)

                try:
                    await self.app(scope, receive, send_status)
                finally:
                    route = getattr(scope.get("route"), "path", "unmatched")
                    request_span.update_name(f"{scope['method']} {route}")
                    request_span.set_attribute("http.route", route)
        finally:
            _current.reset(token)
