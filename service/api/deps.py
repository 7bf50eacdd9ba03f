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

from service.encoders.embedder import Embedder

ScoreObserver = Callable[[str, Sequence[float]], None]
LabelObserver = Callable[[str | None, float], None]  # a classification's label (None: out of scope), confidence
# collection, label key, its leave-one-out answers (computed when asked), the canonical label (None), confidence
ClassificationObserver = Callable[[str, str, Callable[[], Any], Any, float], None]


async def get_embedder(request: Request) -> Embedder:
    return request.app.state.embedder


EmbedderDep = Annotated[Embedder, Depends(get_embedder)]


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
