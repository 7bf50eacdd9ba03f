"""The app's shared objects in one typed place: `create_app` builds a `Services`, `running()` (the app's lifespan)
starts what needs the event loop, and routes reach it through `service.api.deps.get_services` (`ServicesDep`).

`drift` is where the serving path reports what the drift monitor watches (scores, labels, classifications, token
rows, pairs, embeddings): the `DriftMonitor` while an app with O2V_DRIFT_ENABLED runs, else a `NullDriftSink`, so
no caller asks whether drift is on. `monitor` is the monitor itself, for the drift routes. `collections` is the
vector-store registry, `fingerprint` the served model's fingerprint and `heavy_jobs`, `reembed_jobs` the job runners
while the collections router runs; `baseline_jobs` the baseline uploads' threads while the drift router runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from service.api.jobs import HeavyJobs, ReembedJobs
from service.api.limits import Limits
from service.api.metrics import Metrics
from service.drift import DriftMonitor, DriftWorker
from service.drift.metrics import DriftCollector
from service.drift.sink import DriftSink, NullDriftSink
from service.encoders.base import Encoder, EncoderError
from service.encoders.embedder import Embedder
from service.encoders.pool import EmbedderPool
from service.index.base import CollectionRegistry
from service.model.jobs import AdaptJobs
from service.model.registry import ModelRegistry
from service.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class NotRunning(RuntimeError):
    """An object that exists only while the app runs was asked for before its lifespan started."""


def running(value: T | None, what: str, owner: str) -> T:
    """`value`, set by `owner`'s lifespan; NotRunning where it is not set (yet)."""
    if value is None:
        raise NotRunning(f"{what} exists while {owner} runs")
    return value


@dataclass
class Services:
    settings: Settings
    encoder: Encoder
    limits: Limits
    metrics: Metrics
    model_registry: ModelRegistry
    adapt_jobs: AdaptJobs
    drift: DriftSink = field(default_factory=NullDriftSink)
    monitor: DriftMonitor | None = None
    collections: CollectionRegistry | None = None
    fingerprint: str | None = None
    heavy_jobs: HeavyJobs | None = None
    reembed_jobs: ReembedJobs | None = None
    baseline_jobs: HeavyJobs | None = None
    _embedder: Embedder | None = field(default=None, init=False, repr=False)
    _models: EmbedderPool | None = field(default=None, init=False, repr=False)
    _watched: Embedder | None = field(default=None, init=False, repr=False)
    _switching: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    @classmethod
    def of(cls, settings: Settings, encoder: Encoder) -> Services:
        model_path = encoder.model.path if encoder.backend == "onnx" else None
        return cls(
            settings=settings,
            encoder=encoder,
            limits=Limits.of(settings, encoder),
            metrics=Metrics(),
            model_registry=ModelRegistry(settings.data_dir, encoder.name, model_path, settings.default_model),
            adapt_jobs=AdaptJobs(settings.data_dir),
        )

    @property
    def embedder(self) -> Embedder:
        """The configured model's Embedder (service/encoders/embedder.py), whose fingerprint `served_fingerprint`
        is; routes that embed for a caller use `default_embedder` (the promoted model, else this one)."""
        return running(self._embedder, "the embedder", "the app")

    @property
    def models(self) -> EmbedderPool:
        """The Embedders of the registry's models, loaded on first use."""
        return running(self._models, "the model pool", "the app")

    async def default_embedder(self) -> Embedder:
        """The default model's Embedder (promoted, else configured: the registry's `default.json`, read at each
        call, so a promotion by another worker or the CLI reaches this one too). The drift monitor watches the
        default model: when it changed, the monitor's sink moves to it and the monitor is told (`_watch`)."""
        embedder = await self.models.default()
        if embedder is not self._watched:
            await self._watch(embedder)
        return embedder

    def watches(self, embedder: Embedder) -> bool:
        """Whether the drift monitor judges `embedder`'s output: the default model's only, so a request naming
        another model does not mix that model's scores into the default's streams."""
        return embedder is self._watched

    async def _watch(self, embedder: Embedder) -> None:
        """Make `embedder` the one the drift monitor watches: its tokens and embeddings feed the monitor (the
        previous default's stop), and a model with another card restarts the monitor's learned state as a restart
        with another model does (DriftMonitor.serve_model)."""
        async with self._switching:
            watched = self._watched
            if embedder is watched:
                return
            monitor = self.monitor
            if monitor is not None:
                if watched is not None:
                    watched.sink = None
                model_dir = self._model_dir(embedder)
                tokenizer = getattr(embedder.encoder, "tokenizer", None)
                await asyncio.to_thread(monitor.serve_model, embedder.encoder.model.card, model_dir, tokenizer)
                embedder.sink = monitor
            self._watched = embedder

    def _model_dir(self, embedder: Embedder) -> Path:
        """Where a model's files are: O2V_MODEL_DIR for the configured model (a SageMaker endpoint's tokenizer is
        there too), an adapted model's own directory."""
        return self.settings.model_dir if embedder is self.embedder else embedder.encoder.model.path

    def require_collections(self) -> CollectionRegistry:
        """The vector-store registry (set by the collections router while it runs)."""
        return running(self.collections, "the collections registry", "the collections router")

    def served_fingerprint(self) -> str:
        """The served model's fingerprint (service/index/fingerprint.py), taken when the collections router starts."""
        return running(self.fingerprint, "the served model's fingerprint", "the collections router")

    def require_heavy_jobs(self) -> HeavyJobs:
        """The slots of the collections router's heavy requests (clustering)."""
        return running(self.heavy_jobs, "the heavy-job slots", "the collections router")

    def require_reembed_jobs(self) -> ReembedJobs:
        """The collections router's re-embedding runs."""
        return running(self.reembed_jobs, "the re-embedding runs", "the collections router")

    def require_baseline_jobs(self) -> HeavyJobs:
        """The drift router's baseline-upload threads."""
        return running(self.baseline_jobs, "the baseline-upload threads", "the drift router")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The embedder, the model pool, the adaptation jobs and (with O2V_DRIFT_ENABLED) the drift monitor with its
        checking thread, from start-up to shutdown."""
        settings, encoder = self.settings, self.encoder
        self._switching = asyncio.Lock()  # of this lifespan's event loop
        embedder = self._embedder = Embedder(encoder, settings, self.metrics.observe_encoder)
        embedder.start()
        self.metrics.track_queues(embedder)
        self.metrics.track_cache(embedder.cache)
        await asyncio.to_thread(self.adapt_jobs.recover)  # a job left running by a stopped server failed
        self._models = EmbedderPool(self.model_registry, settings, embedder, self.metrics.observe_encoder)
        if settings.drift.enabled:
            watched = await self._start_default()
            model = watched.encoder
            self.monitor = DriftMonitor.from_settings(
                settings, model.model.card, getattr(model, "tokenizer", None), self._model_dir(watched)
            )
            watched.sink, self._watched = self.monitor, watched
        try:
            await embedder.check()  # warm-up: the first request should not pay for lazy allocations
        except EncoderError as exc:
            log.warning("the backend does not answer yet: %s", exc.message)
        try:
            async with self._drift_running():
                yield
        finally:
            self.adapt_jobs.close()
            await self._models.close()
            await embedder.close()

    async def _start_default(self) -> Embedder:
        """The default model's Embedder at start-up, so the monitor's saved state meets the model that wrote it; the
        configured one (with a warning) when the promoted model cannot load: requests naming none answer that
        model's error until it is fixed or another one is promoted."""
        try:
            return await self.models.default()
        except Exception as exc:  # any load failure: the monitor still starts, on the configured model
            name = self.models.default_name
            log.warning("the default model %r does not load (%r): drift watches the configured model", name, exc)
            return self.embedder

    @asynccontextmanager
    async def _drift_running(self) -> AsyncIterator[None]:
        """The monitor's checking thread and gauges; on shutdown its last checks and its state are written."""
        monitor = self.monitor
        if monitor is None:
            yield
            return
        collector = DriftCollector(monitor)
        worker = DriftWorker(monitor)
        self.metrics.registry.register(collector)
        self.drift = monitor
        worker.start()
        try:
            yield
        finally:
            self.drift = NullDriftSink()
            self.metrics.registry.unregister(collector)
            await asyncio.to_thread(worker.stop)
