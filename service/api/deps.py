"""FastAPI dependencies and helpers that hand routes the app's shared objects (service/api/services.py).

`get_services(request)` (`ServicesDep`) is the one way in. `model_embedder(request, name)` returns the Embedder of the
model a request names, the default model (promoted, else configured) when it names none, and `DefaultEmbedderDep`
that default for routes without `model`: `await embedder.embed(texts)` gives unit-length float32 vectors [n, dim]
through the micro-batcher. `get_embedder` (`EmbedderDep`) is the configured model's, which the collections pair with
`served_fingerprint`. What a route reports to the drift monitor goes through `observe_scores`, `observe_pairs`,
`observe_label` (each given the Embedder whose vectors made it: only the watched model's count) and
`observe_classification` (the app's `DriftSink`: a no-op when drift is off), and a route that feeds a caller-named
drift stream calls `admit_stream` first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request

from service.api.auth import may_write
from service.api.errors import ApiError
from service.api.jobs import HeavyJobs, ReembedJobs
from service.api.services import Services
from service.drift.errors import InvalidStream
from service.drift.sink import PairRows, Pairs
from service.encoders.embedder import Embedder
from service.index.base import CollectionRegistry
from service.model.registry import ModelNameError, UnknownModel


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_embedder(request: Request) -> Embedder:
    return get_services(request).embedder


EmbedderDep = Annotated[Embedder, Depends(get_embedder)]


async def default_embedder(request: Request) -> Embedder:
    """The default model's Embedder (promoted, else configured), held for the whole request: a promotion meanwhile
    lets the request finish on the model it started with."""
    return await get_services(request).default_embedder()


DefaultEmbedderDep = Annotated[Embedder, Depends(default_embedder)]


def get_collections(request: Request) -> CollectionRegistry:
    return get_services(request).require_collections()


CollectionsDep = Annotated[CollectionRegistry, Depends(get_collections)]


def get_heavy_jobs(request: Request) -> HeavyJobs:
    """The slots of the collections router's heavy requests (service/api/collections/__init__.py's lifespan)."""
    return get_services(request).require_heavy_jobs()


def get_reembed_jobs(request: Request) -> ReembedJobs:
    """The collections router's re-embedding runs (service/api/collections/__init__.py's lifespan)."""
    return get_services(request).require_reembed_jobs()


def served_fingerprint(request: Request) -> str:
    """The fingerprint of the served model (service/index/fingerprint.py), taken when the collections router
    starts."""
    return get_services(request).served_fingerprint()


async def fingerprint_embedder(request: Request, fingerprint: str) -> Embedder | None:
    """The Embedder of the registry model with this fingerprint; None when no model here has it."""
    return await get_services(request).models.for_fingerprint(fingerprint)


def observe_scores(request: Request, embedder: Embedder, stream: str, scores: Sequence[float]) -> None:
    """Scores computed from `embedder`'s vectors, recorded only when the drift monitor watches that model
    (`Services.watches`): the streams judge the default model, so another model's scores would mix into them."""
    services = get_services(request)
    if services.watches(embedder):
        services.drift.record_many(stream, scores)


def observe_pairs(
    request: Request, embedder: Embedder, stream: str, pairs: Pairs, rows: PairRows, cosines: Sequence[float]
) -> None:
    """A /similarity request's pair cosines (as `observe_scores`) with its pairs and token rows, which the drift
    monitor keeps only with O2V_DRIFT_KEEP_TEXTS (`o2v drift export`: training pairs)."""
    services = get_services(request)
    if services.watches(embedder):
        services.drift.record_many(stream, cosines)
        services.drift.record_pairs(stream, pairs, rows, cosines)


def observe_label(request: Request, embedder: Embedder, label: str | None, confidence: float) -> None:
    """A classification's label (None: out of scope) and confidence, by `embedder`'s vectors (as `observe_scores`)."""
    services = get_services(request)
    if services.watches(embedder):
        services.drift.record_label(label, confidence)


def observe_classification(
    request: Request, collection: str, label_key: str, reference: Callable[[], Any], label: Any, confidence: float
) -> None:
    """A classify answer of `collection` (its canonical label, None: out of scope), with a way to compute the
    collection's leave-one-out answers (the drift monitor's per-collection reference)."""
    get_services(request).drift.record_classification(collection, label_key, reference, label, confidence)


def admit_stream(request: Request, stream: str) -> None:
    """Let a route feed `stream`: it exists, or the caller may write and it is made now (422 past the limit).
    Call before any work; an app without the drift monitor admits everything."""
    monitor = get_services(request).monitor
    if monitor is None or monitor.has_stream(stream):
        return
    if not may_write(request):
        raise InvalidStream(
            f"no drift stream named {stream!r}: an operator creates it with the API key "
            f"(PUT /drift/streams/{stream}), or leave out stream"
        )
    monitor.create_stream(stream)


async def model_embedder(request: Request, name: str | None) -> Embedder:
    """The Embedder of the model a request names (None, or one of O2V_MODEL_ALIASES: the default model); an unknown
    name is a 404 model_not_found naming the models there are."""
    services = get_services(request)
    pool, aliases = services.models, services.settings.model_aliases
    if name is None or name in aliases:
        return await services.default_embedder()
    try:
        return await pool.get(name)
    except (UnknownModel, ModelNameError) as exc:
        names = ", ".join(repr(a) for a in aliases) or "none"
        message = f"{exc}; names of the default model (O2V_MODEL_ALIASES): {names}"
        raise ApiError(404, message, field="model", type="model_not_found") from None
