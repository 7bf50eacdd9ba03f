"""Prometheus metrics of one app: requests and latency by route and status, batch sizes, queue depth, encoder time.

Each app has its own registry (its `Services.metrics.registry`), so several apps in one process (tests) do not clash;
other routers may register their own collectors there. With several uvicorn workers each scrape sees one worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.encoders.cache import EmbeddingCache
from service.encoders.embedder import Embedder

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = tuple(float(2**i) for i in range(11))  # 1 .. 1024 rows


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory, open fds
        self.requests = Counter(
            "o2v_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "o2v_http_request_duration_seconds",
            "Time from request to the end of the answer",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "o2v_batch_size", "Rows in one micro-batcher encoder call", buckets=_SIZE_BUCKETS, registry=self.registry
        )
        self.encoder_seconds = Histogram(
            "o2v_encoder_duration_seconds",
            "Time in one encoder call (op: embed, score)",
            ["op"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("o2v_queue_depth", "Rows waiting for the encoder", ["channel"], registry=self.registry)

    def observe_encoder(self, op: str, rows: int, seconds: float) -> None:
        self.encoder_seconds.labels(op).observe(seconds)
        if op == "embed":
            self.batch_size.observe(rows)

    def track_queues(self, embedder: Embedder) -> None:
        for channel, batcher in embedder.batchers.items():
            self.queue_depth.labels(channel).set_function(partial(getattr, batcher, "depth"))  # this loop's batcher

    def track_cache(self, cache: EmbeddingCache | None) -> None:
        """The embedding cache's hits, misses and bytes (O2V_EMBED_CACHE_BYTES), read at scrape time."""
        if cache is not None:
            self.registry.register(_CacheCollector(cache))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CacheCollector:
    """Reads the cache's own counters, so its hot path (the event loop) does no metric bookkeeping."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("o2v_embed_cache_hits", "Embeddings answered from the cache", self.cache.hits)
        yield CounterMetricFamily("o2v_embed_cache_misses", "Embeddings the cache did not hold", self.cache.misses)
        yield GaugeMetricFamily("o2v_embed_cache_bytes", "Bytes the cache holds (estimate)", self.cache.bytes)
        yield GaugeMetricFamily("o2v_embed_cache_entries", "Embeddings the cache holds", len(self.cache))


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (never the raw path: bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            labels = (route, scope["method"], str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)
