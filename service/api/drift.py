"""Drift routes: GET /drift (per-stream status and statistics), PUT /drift/baseline/{stream}, GET /drift/report,
PUT and DELETE /drift/streams/{stream}, GET /drift/export/{stream} (the window behind a verdict, keyed).

The router's lifespan owns the app's DriftMonitor (service/drift): it subscribes the monitor to every score the
other routes report (`app.state.score_observers`), adds its gauges to the app's metrics registry, runs the
background checker, and writes the state on shutdown; it also watches the app's embedder (token rows and encoder-0
embeddings, `watch_embedder`) and takes classify's labels (`app.state.label_observers`). Streams are a bounded
namespace (O2V_DRIFT_MAX_STREAMS), so only write-key holders make new ones (`admit_stream`): unkeyed callers once
filled every slot with junk names.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, TypeAdapter, WithJsonSchema
from scipy.stats import spearmanr
from starlette.responses import HTMLResponse, Response

from service.api import limits
from service.api.auth import may_write, require_api_key
from service.api.collections import HeavyJobs
from service.api.deps import EmbedderDep
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.render import json_response
from service.drift import DriftMonitor, DriftWorker
from service.drift.baseline import MIN_BASELINE
from service.drift.errors import InvalidStream
from service.drift.metrics import DriftCollector
from service.drift.report import render_html
from service.drift.streams import STREAM_PATTERN
from service.encoders.base import Encoder
from service.encoders.embedder import Embedder
from service.errors import NotFound
from service.settings import Settings
from service.vectors import pair_cosines

MAX_BASELINE_SCORES = 100_000
MAX_BASELINE_PAIRS = 10_000
SCORE_LIMIT = 1.0e6  # far beyond any similarity score; larger magnitudes overflow the baseline's variance
Score = Annotated[StrictFloat, Field(ge=-SCORE_LIMIT, le=SCORE_LIMIT, allow_inf_nan=False)]  # JSON true is not 1.0
StreamName = Annotated[str, Path(pattern=STREAM_PATTERN, description="a drift stream, e.g. similarity")]


class BaselineOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    stream: str
    baseline: dict[str, Any] = Field(description="source, created, n, mean, std, min, max, quantiles")
    label_spearman: float | None = Field(None, description="Spearman of the pair cosines with the given labels")


def _pair(value: Any) -> Any:
    """[a, b] or [a, b, label] → (a, b, label or None): one tuple type, so that an error names `pairs[9][1]` (with a
    union of the two shapes pydantic names the member it tried instead)."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return (*value, None)
    if isinstance(value, list | tuple) and len(value) == 3 and value[2] is None:
        raise ValueError("a pair's label must be a number")
    return value


def get_monitor(request: Request) -> DriftMonitor:
    return request.app.state.drift


MonitorDep = Annotated[DriftMonitor, Depends(get_monitor)]


def admit_stream(request: Request, stream: str) -> None:
    """Let a route feed `stream`: it exists, or the caller may write and it is made now (422 past the limit).
    Call before any work; an app without the drift router admits everything."""
    monitor: DriftMonitor | None = getattr(request.app.state, "drift", None)
    if monitor is None or monitor.has_stream(stream):
        return
    if not may_write(request):
        raise InvalidStream(
            f"no drift stream named {stream!r}: an operator creates it with the API key "
            f"(PUT /drift/streams/{stream}), or leave out stream"
        )
    monitor.create_stream(stream)


async def embed_pairs(embedder: Embedder, pairs: list[tuple[str, str]], chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings of every text, a then b per pair; cosine of each pair), embedded `chunk` texts at a time so a
    large baseline never overfills the queue."""
    texts = [t for pair in pairs for t in pair]
    vectors = np.concatenate([await embedder.embed(texts[i : i + chunk]) for i in range(0, len(texts), chunk)])
    return vectors, pair_cosines(vectors[0::2], vectors[1::2])


def watch_embedder(embedder: Embedder, monitor: DriftMonitor) -> Callable[[], None]:
    """Hand every tokenized request and its embeddings to the monitor (an Embedder watcher); returns the undo. The
    monitor only queues rows and copies vectors; the statistics run on the checking thread."""
    embedder.watchers.append(monitor)
    return lambda: embedder.watchers.remove(monitor)


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    Text = limits.text(settings)
    pair_schema = {
        "type": "array",
        "prefixItems": [TypeAdapter(Text).json_schema()] * 2 + [TypeAdapter(Score).json_schema()],
        "minItems": 2,
        "maxItems": 3,
    }
    Pair = Annotated[tuple[Text, Text, Score | None], BeforeValidator(_pair), WithJsonSchema(pair_schema)]

    class BaselineIn(BaseModel):
        """Exactly one of `scores` (raw scores) or `pairs` (texts the service embeds and scores itself)."""

        model_config = ConfigDict(extra="forbid")
        scores: Annotated[list[Score], Field(min_length=MIN_BASELINE, max_length=MAX_BASELINE_SCORES)] | None = None
        pairs: Annotated[list[Pair], Field(min_length=MIN_BASELINE, max_length=MAX_BASELINE_PAIRS)] | None = None
        source: Annotated[str, Field(max_length=200)] | None = Field(None, description="a note kept with it")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        monitor = DriftMonitor.from_settings(settings, encoder.model.card, getattr(encoder, "tokenizer", None))
        unwatch = watch_embedder(app.state.embedder, monitor)
        collector = DriftCollector(monitor)
        worker = DriftWorker(monitor)
        app.state.drift = monitor
        app.state.score_observers.append(monitor.record_many)
        app.state.label_observers.append(monitor.record_label)
        app.state.classification_observers.append(monitor.record_classification)
        app.state.metrics.registry.register(collector)
        app.state.baseline_jobs = HeavyJobs(
            settings.drift.max_baseline_jobs, "O2V_DRIFT_MAX_BASELINE_JOBS", "baseline upload(s)"
        )
        worker.start()
        try:
            yield
        finally:
            app.state.baseline_jobs.close()
            app.state.score_observers.remove(monitor.record_many)
            app.state.label_observers.remove(monitor.record_label)
            app.state.classification_observers.remove(monitor.record_classification)
            unwatch()
            app.state.metrics.registry.unregister(collector)
            await asyncio.to_thread(worker.stop)

    router = APIRouter(tags=["drift"], lifespan=lifespan)

    @router.get("/drift", responses=responses(404, 422))
    def drift(monitor: MonitorDep, stream: Annotated[str | None, Query(pattern=STREAM_PATTERN)] = None) -> Response:
        """Every stream (or one): status, raw status, counts, each statistic with its thresholds, baseline and live
        summaries, histogram, history and advice."""
        doc = monitor.report()
        if stream is not None:
            if stream not in doc["streams"]:
                raise NotFound.stream(stream)
            doc["streams"] = {stream: doc["streams"][stream]}
        return json_response(doc)

    @router.get("/drift/report", response_class=HTMLResponse)
    def drift_report(monitor: MonitorDep) -> HTMLResponse:
        """An HTML page with the baseline-vs-live histogram of every stream (inline SVG, no scripts)."""
        return HTMLResponse(render_html(monitor.report()))

    @router.put(
        "/drift/baseline/{stream}",
        response_model=BaselineOut,
        dependencies=[Depends(require_api_key)],
        responses=responses(*BODY_ERRORS, 401, 503, 507),
    )
    async def set_baseline(
        request: Request, stream: StreamName, body: BaselineIn, monitor: MonitorDep, embedder: EmbedderDep
    ) -> Response:
        """Replace the stream's baseline (its status starts again from no verdict); stored before the answer. The
        shift test's simulation runs on threads of its own (O2V_DRIFT_MAX_BASELINE_JOBS; 503 when all are busy),
        never in the pool that collection routes share."""
        if (body.scores is None) == (body.pairs is None):
            raise ApiError(422, "give exactly one of scores and pairs", "scores")
        created = monitor.create_stream(stream)  # before the pairs are embedded: past the stream limit nothing is spent
        label_spearman = None
        texts: np.ndarray | None = None
        scores: Sequence[float] | np.ndarray
        if body.pairs is not None:
            pairs = [(p[0], p[1]) for p in body.pairs]
            texts, scores = await embed_pairs(embedder, pairs, settings.limits.max_request_texts)
            labels = [p[2] for p in body.pairs if p[2] is not None]
            if len(labels) == len(body.pairs) and len(set(labels)) > 1 and np.ptp(scores) > 0:
                label_spearman = round(float(spearmanr(scores, labels).statistic), 6)
            source = body.source or f"pairs:{len(body.pairs)} scored by {encoder.name}"
        else:
            scores, source = body.scores or [], body.source or f"scores:{len(body.scores or [])}"

        def store(cancelled: Callable[[], bool]) -> dict[str, Any]:
            return monitor.set_baseline(stream, scores, source, texts, made_for=created)

        described = await request.app.state.baseline_jobs.run(request, store)
        return json_response({"stream": stream, "baseline": described, "label_spearman": label_spearman})

    @router.get("/drift/export/{stream}", dependencies=[Depends(require_api_key)], responses=responses(401, 404, 422))
    def export_stream(stream: StreamName, monitor: MonitorDep) -> Response:
        """The live window behind the stream's verdict, as training material: the verdict, the window's scores,
        and for the token streams the kept texts with their rates (O2V_DRIFT_KEEP_TEXTS; texts may be personal
        data, so the API key is needed even where reads are open)."""
        return json_response(monitor.export(stream))

    @router.put(
        "/drift/streams/{stream}",
        status_code=201,
        dependencies=[Depends(require_api_key)],
        responses={200: {"description": "it existed already"}, **responses(401, 409, 422)},
    )
    async def create_stream(stream: StreamName, monitor: MonitorDep) -> Response:
        """Make a stream that callers without the API key may then feed (`"stream"` of /similarity); idempotent.
        Its baseline is the model card's until one is uploaded. Stored before the answer."""
        created = monitor.create_stream(stream)
        await asyncio.to_thread(monitor.save)
        try:
            report = await asyncio.to_thread(monitor.stream_report, stream)  # it waits for a running check
        except NotFound as exc:
            raise ApiError(409, f"drift stream {stream!r} was deleted by a concurrent request", "stream") from exc
        return json_response(report, status=201 if created else 200)

    @router.delete(
        "/drift/streams/{stream}",
        status_code=204,
        dependencies=[Depends(require_api_key)],
        responses=responses(401, 404, 409, 422),
    )
    async def delete_stream(stream: StreamName, monitor: MonitorDep) -> Response:
        """Forget a stream: its window, history, status and uploaded baseline (frees a slot of
        O2V_DRIFT_MAX_STREAMS). Built-in and configured streams cannot be deleted (409)."""
        await asyncio.to_thread(monitor.delete_stream, stream)
        return Response(status_code=204)

    return router
