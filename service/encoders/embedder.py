"""Embedder: what routes call to embed: the tokenizer, then the micro-batchers, then the encoder.

Other routers get it with `service.api.deps.get_embedder` and call `await embedder.embed(texts)` for unit-length
float32 vectors [n, dim]; `tokenize` + `embed_ids` when they need the token counts too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal, Protocol, TypeVar, cast

import numpy as np

from service.encoders.base import BackendUnavailable, Channel, Encoder, Rows
from service.encoders.batching import ENCODE_BATCH, Job, MicroBatcher
from service.encoders.cache import EmbeddingCache, cache_key
from service.settings import Settings
from service.text import Direction, Encoded, Token
from service.tracing import current, span
from service.vectors import l2_normalize, pair_cosines

INLINE_TOKENIZE_CHARS = 512
MAX_TOKENIZE_IN_FLIGHT = 4
"""Long-text tokenizations (over INLINE_TOKENIZE_CHARS) running at once on worker threads, any route; others wait.
Each is CPU-bound on a thread of the pool: a few at once keep the cores busy while the event loop stays free for
short texts; more would only crowd the pool that the encoder's batches run on too."""
Scorer = Literal["object2vec", "cosine"]
CHECK_TIMEOUT_S = 5.0
T = TypeVar("T")
Observe = Callable[[str, int, float], None]  # (operation, rows, seconds) of one encoder call


class InputSink(Protocol):
    """Sees every tokenized request and encoder 0's embeddings (the drift monitor's unseen-token and embedding
    signals, service/drift/sink.py); it must only queue or copy, as it runs on the request path."""

    def record_tokens(self, rows: list[list[int]], lengths: list[int], texts: Sequence[str] | None = None) -> None: ...

    def record_embeddings(self, vectors: np.ndarray) -> None: ...


class Embedder:
    """One per app: the encoder behind one micro-batcher per Object2Vec input channel."""

    def __init__(
        self, encoder: Encoder, settings: Settings, observe: Observe | None = None, sink: InputSink | None = None
    ) -> None:
        self.encoder = encoder
        self.observe = observe
        self.batchers = {
            channel: MicroBatcher(
                partial(encoder.embed_ids, channel=channel),
                ENCODE_BATCH,
                settings.max_batch_wait_ms,
                settings.max_queued_texts,
                on_batch=partial(observe, "embed") if observe else None,
                name=channel,
            )
            for channel in ("in0", "in1")
        }
        self.cache = EmbeddingCache(settings.embed_cache_bytes) if settings.embed_cache_bytes else None
        self.max_tokenize_tokens = settings.limits.max_tokenize_tokens
        self._tokenizing = asyncio.Semaphore(MAX_TOKENIZE_IN_FLIGHT)
        self.sink = sink

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def max_seq_len(self) -> int:
        """Tokens of a text encoder 0 reads; the rest is cut."""
        return self.encoder.tokenizer.max_seq_len

    @property
    def has_scorer(self) -> bool:
        return self.encoder.has_scorer

    def start(self) -> None:
        for batcher in self.batchers.values():
            batcher.start()

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()

    async def _off_loop_if_long(self, texts: Sequence[str], fn: Callable[[], T]) -> T:
        """Short inputs are tokenized on the event loop (tens of microseconds, less than a thread hop costs);
        longer ones on a worker thread, so that one large request cannot stall every other."""
        if sum(len(t) for t in texts) <= INLINE_TOKENIZE_CHARS:
            return fn()
        async with self._tokenizing:  # MAX_TOKENIZE_IN_FLIGHT: what a burst of long texts may hold at once
            return await asyncio.to_thread(fn)

    async def tokens(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[list[Token]]:
        """Every token of each text with its span, uncut (for callers budgeting their texts); more than
        O2V_MAX_TOKENIZE_TOKENS in all is a 422 (TooManyTokens), found before they are all held."""
        tokens = partial(self.encoder.tokenizer.tokens, texts, add_special_tokens, self.max_tokenize_tokens)
        return await self._off_loop_if_long(texts, tokens)

    async def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids cut to the model's max_seq_len (the end is cut); see `tokenize_counted`."""
        return (await self.tokenize_counted(texts)).rows

    async def tokenize_counted(self, texts: Sequence[str], direction: Direction = "right") -> Encoded:
        """Ids cut to max_seq_len from `direction`, with the counts before the cut. Texts are embedded by encoder 0
        next: when its queue is full this refuses (Overloaded, 503) before tokenizing."""
        self.batchers["in0"].admit(len(texts))
        with span("tokenize", **{"o2v.texts": len(texts)}):
            encoded = await self._off_loop_if_long(
                texts, partial(self.encoder.tokenizer.encode_counted, texts, direction)
            )
        if self.sink is not None:
            self.sink.record_tokens(encoded.rows, encoded.lengths, texts)
        return encoded

    async def embed_ids(self, rows: Rows, channel: Channel = "in0") -> np.ndarray:
        """Raw (not normalised) embeddings, as Object2Vec returns them; rows the cache holds skip the encoder."""
        vectors = await self._cached(rows, channel)
        if channel == "in0" and self.sink is not None:  # encoder 0's embeddings: what the drift sample holds
            self.sink.record_embeddings(vectors)
        return vectors

    async def _cached(self, rows: Rows, channel: Channel) -> np.ndarray:
        if self.cache is None:
            return await self._run(rows, channel)
        keys = [cache_key(channel, row) for row in rows]
        found = [self.cache.get(key) for key in keys]
        missing = [i for i, vector in enumerate(found) if vector is None]
        if missing:
            computed = await self._run([rows[i] for i in missing], channel)
            for i, vector in zip(missing, computed, strict=True):
                self.cache.put(keys[i], vector)
                found[i] = vector
        return np.stack(cast(list[np.ndarray], found)) if found else np.empty((0, self.dim), np.float32)  # all filled

    async def _run(self, rows: Rows, channel: Channel) -> np.ndarray:
        """The micro-batcher; when the request is traced, each part's queue wait and encoder call become spans."""
        tracing = current()
        if not tracing.enabled:
            return await self.batchers[channel].run(rows)

        def spans(job: Job) -> None:
            attributes = {"o2v.channel": channel, "o2v.rows": len(job.rows), "o2v.batch_rows": job.batch_rows}
            tracing.record("queue", job.queued_ns, job.started_ns, **attributes)
            tracing.record("encoder", job.started_ns, job.finished_ns, backend=self.encoder.backend, **attributes)

        return await self.batchers[channel].run(rows, on_times=spans)

    async def embed(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        vectors = await self.embed_ids(await self.tokenize(texts))
        return l2_normalize(vectors) if normalize else vectors

    async def score_ids(self, rows0: Rows, rows1: Rows) -> np.ndarray:
        """Object2Vec pair scores [n, K]; not batched across requests (each call is one scorer run)."""
        started = time.perf_counter()
        with span("encoder", backend=self.encoder.backend, **{"o2v.op": "score", "o2v.rows": len(rows0)}):
            scores = await asyncio.to_thread(self.encoder.score_ids, rows0, rows1)
        if self.observe:
            self.observe("score", len(rows0), time.perf_counter() - started)
        return scores

    async def rerank(
        self, query: str, texts: Sequence[str], raw: bool = False, direction: Direction = "right"
    ) -> tuple[np.ndarray, Scorer, Encoded]:
        """Relevance of each text to `query`: Object2Vec's score of (query → in0, text → in1), as /similarity's
        `score`, where the model has a scorer; else the cosine of their encoder-0 embeddings. `raw`: a softmax
        model's probability p of the last class becomes its log-odds log(p / (1 - p)), the two-class logit TEI
        calls raw; a regression value and a cosine are raw already. Also answers the token counts of
        [query, *texts] (cut to max_seq_len from `direction`), so callers can see which were cut."""
        encoded = await self.tokenize_counted([query, *texts], direction)
        rows = encoded.rows
        if not self.has_scorer:
            vectors = await self.embed_ids(rows)
            return pair_cosines(vectors[1:], vectors[:1]), "cosine", encoded
        scores = await self.score_ids([rows[0]] * len(texts), rows[1:])
        last = scores[:, -1].astype(np.float64)
        if raw and scores.shape[1] > 1:
            p = np.clip(last, 1e-7, 1 - 1e-7)
            last = np.log(p / (1 - p))
        return last, "object2vec", encoded

    async def check(self, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        """Raise EncoderError unless one token goes through the encoder within timeout_s (a probe must not hang
        for the SageMaker client's full retries and read timeout)."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self.encoder.check), timeout_s)
        except TimeoutError as exc:
            raise BackendUnavailable(f"the {self.encoder.backend} backend did not answer in {timeout_s:g} s") from exc
