"""FastAPI dependencies and helpers that hand routes the app's shared objects (service/api/services.py).

`get_services(request)` (`ServicesDep`) is the one way in. `get_embedder(request)` returns the served model's Embedder:
`await embedder.embed(texts)` gives unit-length float32 vectors [n, dim] through the micro-batcher;
`model_embedder(request, name)` the Embedder of a model a request names. What a route reports to the drift monitor
goes through `observe_scores`, `observe_label` and `observe_classification` (the app's `DriftSink`: a no-op when
drift is off), and a route that feeds a caller-named drift stream calls `admit_stream` first.
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


def observe_scores(request: Request, stream: str, scores: Sequence[float]) -> None:
    get_services(request).drift.record_many(stream, scores)


def observe_label(request: Request, label: str | None, confidence: float) -> None:
    """A classification's label (None: out of scope) and confidence."""
    get_services(request).drift.record_label(label, confidence)


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
        return await pool.default()
    try:
        return await pool.get(name)
    except (UnknownModel, ModelNameError) as exc:
        names = ", ".join(repr(a) for a in aliases) or "none"
        message = f"{exc}; names of the default model (O2V_MODEL_ALIASES): {names}"
        raise ApiError(404, message, field="model", type="model_not_found") from None
