"""FastAPI dependencies that hand routes the app's shared objects: embedder, score observers.

`get_embedder(request)` returns the app's Embedder (service/encoders/embedder.py): `await embedder.embed(texts)`
gives unit-length float32 vectors [n, dim] through the micro-batcher. Anything that wants every score a caller
sees (the drift monitor) appends a `(stream, scores) -> None` callable to `app.state.score_observers`; every
classification's answer goes to the `(label, confidence) -> None` callables of `app.state.label_observers`, and
with its collection, label key and a way to compute the collection's leave-one-out answers to
`app.state.classification_observers` (the drift monitor's per-collection reference).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request

from service.api.errors import ApiError
from service.api.jobs import HeavyJobs, ReembedJobs
from service.encoders.embedder import Embedder
from service.index.base import CollectionRegistry
from service.model.registry import ModelNameError, UnknownModel
from service.settings import Settings

ScoreObserver = Callable[[str, Sequence[float]], None]
LabelObserver = Callable[[str | None, float], None]  # a classification's label (None: out of scope), confidence
# collection, label key, its leave-one-out answers (computed when asked), the canonical label (None), confidence
ClassificationObserver = Callable[[str, str, Callable[[], Any], Any, float], None]


async def get_embedder(request: Request) -> Embedder:
    return request.app.state.embedder


EmbedderDep = Annotated[Embedder, Depends(get_embedder)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_collections(request: Request) -> CollectionRegistry:
    return request.app.state.collections


CollectionsDep = Annotated[CollectionRegistry, Depends(get_collections)]


def get_heavy_jobs(request: Request) -> HeavyJobs:
    return request.app.state.heavy_jobs


def get_reembed_jobs(request: Request) -> ReembedJobs:
    return request.app.state.reembed_jobs


def served_fingerprint(request: Request) -> str:
    """The fingerprint of the served model (service/index/fingerprint.py), taken once at start-up."""
    return request.app.state.served_fingerprint


async def fingerprint_embedder(request: Request, fingerprint: str) -> Embedder | None:
    """The Embedder of the registry model with this fingerprint; None when no model here has it."""
    return await request.app.state.models.for_fingerprint(fingerprint)


def observe_scores(request: Request, stream: str, scores: Sequence[float]) -> None:
    for observer in request.app.state.score_observers:
        observer(stream, scores)


def observe_label(request: Request, label: str | None, confidence: float) -> None:
    for observer in request.app.state.label_observers:
        observer(label, confidence)


def observe_classification(
    request: Request, collection: str, label_key: str, reference: Callable[[], Any], label: Any, confidence: float
) -> None:
    for observer in request.app.state.classification_observers:
        observer(collection, label_key, reference, label, confidence)


async def model_embedder(request: Request, name: str | None, strict: bool = True) -> Embedder:
    """The Embedder of the model a request names (None, or one of O2V_MODEL_ALIASES: the default model); an unknown
    name is a 404 model_not_found naming the models there are, or with `strict` false the default model (Cohere's
    rerank clients must send a model name of their own)."""
    pool = request.app.state.models
    if name is None or name in request.app.state.settings.model_aliases:
        return await pool.default()
    if not strict and name not in {e.name for e in request.app.state.model_registry.entries()}:
        return await pool.default()
    try:
        return await pool.get(name)
    except (UnknownModel, ModelNameError) as exc:
        aliases = ", ".join(repr(a) for a in request.app.state.settings.model_aliases) or "none"
        message = f"{exc}; names of the default model (O2V_MODEL_ALIASES): {aliases}"
        raise ApiError(404, message, field="model", type="model_not_found") from None
