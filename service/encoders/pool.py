"""The loaded models of a server: the configured model's Embedder (always loaded) and adapted models loaded on first
use, at most `models_loaded_max` of them (least recently used first out).

`get(name)` hands a route the Embedder of a model; `default()` the promoted default's. A route holds the Embedder it
got for the whole request, so a promotion (which only changes which Embedder `default()` returns) lets requests in
flight finish on the old model. An evicted Embedder is closed only after `grace_s`, when its requests are done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

from service.encoders.embedder import Embedder, Observe
from service.encoders.onnx import OnnxEncoder
from service.model.registry import ModelRegistry, UnknownModel
from service.settings import Settings

UNLOAD_GRACE_S = 30.0
"""Seconds an unloaded model stays open so that the requests in flight on it finish (a batch takes
milliseconds to seconds)."""


class EmbedderPool:
    def __init__(
        self, registry: ModelRegistry, settings: Settings, configured: Embedder, observe: Observe | None = None
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.configured = configured
        self.observe = observe
        self.loaded: OrderedDict[str, Embedder] = OrderedDict()
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._fingerprints: dict[str, str] = {}  # fingerprint → registry name, filled on a collection's first query

    @property
    def default_name(self) -> str:
        return self.registry.default()

    async def default(self) -> Embedder:
        return await self.get(self.default_name)

    async def get(self, name: str) -> Embedder:
        """The Embedder of model `name`, loading it (off the event loop) when it is not loaded; UnknownModel else."""
        if name == self.configured.name:
            return self.configured
        embedder = self.loaded.get(name)
        if embedder is not None:
            self.loaded.move_to_end(name)
            return embedder
        async with self._lock:
            if name in self.loaded:
                return self.loaded[name]
            model = await asyncio.to_thread(self.registry.model_dir, name)
            s = self.settings
            encoder = await asyncio.to_thread(OnnxEncoder, model, s.onnx_intra_op_threads)
            embedder = Embedder(encoder, s, observe=self.observe)
            embedder.start()
            self.loaded[name] = embedder
            while len(self.loaded) > max(s.max_loaded_models, 1):
                _, old = self.loaded.popitem(last=False)
                task = asyncio.create_task(self._close_later(old, UNLOAD_GRACE_S))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            return embedder

    async def for_fingerprint(self, fingerprint: str) -> Embedder | None:
        """The Embedder of the registry model whose fingerprint a collection recorded (None: no such model here)."""
        from service.index.fingerprint import dir_fingerprint

        name = self._fingerprints.get(fingerprint)
        if name is None:
            for entry in await asyncio.to_thread(self.registry.entries):
                if entry.kind == "adapted" and entry.path is not None:
                    model = await asyncio.to_thread(self.registry.model_dir, entry.name)
                    self._fingerprints[dir_fingerprint(model)] = entry.name
            name = self._fingerprints.get(fingerprint)
        try:
            return None if name is None else await self.get(name)
        except UnknownModel:  # removed since
            self._fingerprints.pop(fingerprint, None)
            return None

    def unload(self, name: str) -> None:
        """Forget a removed model (closed after the grace period)."""
        old = self.loaded.pop(name, None)
        if old is not None:
            task = asyncio.create_task(self._close_later(old, UNLOAD_GRACE_S))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_later(embedder: Embedder, grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        await embedder.close()
        embedder.encoder.close()

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for embedder in self.loaded.values():
            await embedder.close()
            embedder.encoder.close()
        self.loaded.clear()


__all__ = ["EmbedderPool", "UnknownModel"]
