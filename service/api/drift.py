"""Drift routes: GET /drift (per-stream status and statistics), PUT /drift/baseline/{stream}, GET /drift/report,
PUT and DELETE /drift/streams/{stream}, GET /drift/export/{stream} (the window behind a verdict, keyed).

The app's `Services` own the DriftMonitor and its checking thread (service/api/services.py); every route reports
to it through deps.py. Streams are a bounded namespace (O2V_DRIFT_MAX_STREAMS), so only write-key holders make new
ones (`deps.admit_stream`). Baseline uploads run on threads of their own (`baseline_jobs`), never in the pool that
collection routes share.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from starlette.responses import HTMLResponse, Response

from service.api.auth import require_api_key
from service.api.deps import ServicesDep
from service.api.errors import BODY_ERRORS, ApiError, responses
from service.api.jobs import HeavyJobs
from service.api.render import json_response
from service.api.schemas.drift import BaselineIn, BaselineOut
from service.api.services import NotRunning, Services
from service.drift import DriftMonitor
from service.drift.report import render_html
from service.drift.streams import STREAM_PATTERN
from service.encoders.embedder import Embedder
from service.errors import NotFound
from service.vectors import pair_cosines

StreamName = Annotated[str, Path(pattern=STREAM_PATTERN, description="a drift stream, e.g. similarity")]


def get_monitor(services: ServicesDep) -> DriftMonitor:
    if services.monitor is None:
        raise NotRunning("the drift monitor exists while an app with O2V_DRIFT_ENABLED runs")
    return services.monitor


MonitorDep = Annotated[DriftMonitor, Depends(get_monitor)]


async def embed_pairs(embedder: Embedder, pairs: list[tuple[str, str]], chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings of every text, a then b per pair; cosine of each pair), embedded `chunk` texts at a time so a
    large baseline never overfills the queue."""
    texts = [t for pair in pairs for t in pair]
    vectors = np.concatenate([await embedder.embed(texts[i : i + chunk]) for i in range(0, len(texts), chunk)])
    return vectors, pair_cosines(vectors[0::2], vectors[1::2])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The baseline uploads' own threads (O2V_MAX_HEAVY_JOBS of them; 503 when all are busy)."""
    services: Services = app.state.services
    settings = services.settings
    jobs = HeavyJobs(settings.limits.max_heavy_jobs, "O2V_MAX_HEAVY_JOBS", "baseline upload(s)")
    services.baseline_jobs = jobs
    try:
        yield
    finally:
        jobs.close()


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
    request: Request, stream: StreamName, body: BaselineIn, monitor: MonitorDep, services: ServicesDep
) -> Response:
    """Replace the stream's baseline (its status starts again from no verdict); stored before the answer. The
    shift test's simulation runs on threads of its own (O2V_MAX_HEAVY_JOBS; 503 when all are busy),
    never in the pool that collection routes share."""
    if (body.scores is None) == (body.pairs is None):
        raise ApiError(422, "give exactly one of scores and pairs", "scores")
    created = monitor.create_stream(stream)  # before the pairs are embedded: past the stream limit nothing is spent
    label_spearman = None
    texts: np.ndarray | None = None
    scores: Sequence[float] | np.ndarray
    if body.pairs is not None:
        pairs = [(p[0], p[1]) for p in body.pairs]
        embedder = await services.default_embedder()  # the model the monitor watches
        texts, scores = await embed_pairs(embedder, pairs, services.settings.limits.max_request_texts)
        labels = [p[2] for p in body.pairs if p[2] is not None]
        if len(labels) == len(body.pairs) and len(set(labels)) > 1 and np.ptp(scores) > 0:
            from scipy.stats import spearmanr  # late: scipy.stats costs each start 1-2 s

            label_spearman = round(float(spearmanr(scores, labels).statistic), 6)
        source = body.source or f"pairs:{len(body.pairs)} scored by {embedder.name}"
    else:
        scores, source = body.scores or [], body.source or f"scores:{len(body.scores or [])}"

    def store(cancelled: Callable[[], bool]) -> dict[str, Any]:
        return monitor.set_baseline(stream, scores, source, texts, made_for=created)

    described = await services.require_baseline_jobs().run(request, store)
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
