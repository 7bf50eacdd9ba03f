"""Embedder: what routes call to embed: the tokenizer, then the micro-batchers, then the encoder.

Other routers get it with `service.api.deps.get_embedder` and call `await embedder.embed(texts)` for unit-length
float32 vectors [n, dim]; `tokenize` + `embed_ids` when they need the token counts too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from service.encoders.base import BackendUnavailable, Channel, Encoder, Rows, l2_normalize
from service.encoders.batching import MicroBatcher
from service.settings import Settings

INLINE_TOKENIZE_CHARS = 512
CHECK_TIMEOUT_S = 5.0
Observe = Callable[[str, int, float], None]  # (operation, rows, seconds) of one encoder call


class Embedder:
    """One per app: the encoder behind one micro-batcher per Object2Vec input channel."""

    def __init__(self, encoder: Encoder, settings: Settings, observe: Observe | None = None) -> None:
        self.encoder = encoder
        self.observe = observe
        self.batchers = {
            channel: MicroBatcher(
                partial(encoder.embed_ids, channel=channel),
                settings.batch_max_size,
                settings.batch_max_wait_ms,
                settings.queue_max_size,
                on_batch=partial(observe, "embed") if observe else None,
                name=channel,
            )
            for channel in ("in0", "in1")
        }

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def has_scorer(self) -> bool:
        return self.encoder.has_scorer

    def start(self) -> None:
        for batcher in self.batchers.values():
            batcher.start()

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()

    async def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Short inputs are tokenized on the event loop (tens of microseconds, less than a thread hop costs);
        longer ones on a worker thread, so that one large request cannot stall every other. Texts are embedded
        by encoder 0 next: when its queue is full this refuses (Overloaded, 503) before tokenizing."""
        self.batchers["in0"].admit(len(texts))
        if sum(len(t) for t in texts) <= INLINE_TOKENIZE_CHARS:
            return self.encoder.tokenizer.encode(texts)
        return await asyncio.to_thread(self.encoder.tokenizer.encode, texts)

    async def embed_ids(self, rows: Rows, channel: Channel = "in0") -> np.ndarray:
        """Raw (not normalised) embeddings, as Object2Vec returns them."""
        return await self.batchers[channel].run(rows)

    async def embed(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        vectors = await self.embed_ids(await self.tokenize(texts))
        return l2_normalize(vectors) if normalize else vectors

    async def score_ids(self, rows0: Rows, rows1: Rows) -> np.ndarray:
        """Object2Vec pair scores [n, K]; not batched across requests (each call is one scorer run)."""
        started = time.perf_counter()
        scores = await asyncio.to_thread(self.encoder.score_ids, rows0, rows1)
        if self.observe:
            self.observe("score", len(rows0), time.perf_counter() - started)
        return scores

    async def check(self, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        """Raise EncoderError unless one token goes through the encoder within timeout_s (a probe must not hang
        for the SageMaker client's full retries and read timeout)."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self.encoder.check), timeout_s)
        except TimeoutError as exc:
            raise BackendUnavailable(f"the {self.encoder.backend} backend did not answer in {timeout_s:g} s") from exc
