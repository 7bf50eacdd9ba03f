"""Texts of collection requests into vectors, by the model that embedded the collection's texts.

Every collection is pinned to the model that embedded its texts (service/index/fingerprint.py): a server running
another model answers its text writes and text queries 409, naming both, instead of mixing two embedding spaces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from starlette.requests import Request

from service.api.collections.routing import call
from service.api.deps import fingerprint_embedder, served_fingerprint
from service.api.errors import ApiError
from service.api.schemas.collections import ItemIn
from service.encoders.embedder import Embedder
from service.index.base import VectorCollection


async def follow(
    request: Request, collection: VectorCollection, embedder: Embedder, text: str | None
) -> tuple[Embedder, str]:
    """The Embedder of the model that embedded this collection's texts and its fingerprint: the served model, or
    a registry model after POST /collections/{name}/reembed {"model"}. 409 before a text is embedded for a
    collection no model here embedded."""
    served = served_fingerprint(request)
    if text is None:
        return embedder, served
    stored = await call(collection.model)
    if stored is None or stored == served:
        return embedder, served
    found = await fingerprint_embedder(request, stored)
    if found is None:
        await call(collection.check_model, served)
        raise AssertionError("check_model refuses a fingerprint other than the served one")
    return found, stored


def one_of(text: str | None, vector: list[float] | None, field: str) -> None:
    if (text is None) == (vector is None):
        raise ApiError(422, f"give exactly one of {field} (a text) and vector", field)


async def query_vector(embedder: Embedder, text: str | None, given: list[float] | None) -> np.ndarray:
    if text is not None:
        return (await embedder.embed([text]))[0]
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, which service.index refuses by field
        return np.asarray(given, dtype=np.float32)


async def item_vectors(items: Sequence[ItemIn], embedder: Embedder) -> np.ndarray:
    """Given vectors as they are, other items' texts embedded; one width for all (the model's if any is embedded)."""
    to_embed = [i for i, item in enumerate(items) if item.vector is None]
    width = embedder.dim if to_embed else len(items[0].vector or ())
    vectors = np.empty((len(items), width), dtype=np.float32)
    for i, item in enumerate(items):
        if item.vector is None and item.text is None:
            raise ApiError(422, "an item needs a text, a vector, or both", f"items[{i}].text")
        if item.vector is not None:
            if len(item.vector) != width:
                message = f"vector has {len(item.vector)} numbers; this request's vectors have {width}"
                raise ApiError(422, message, f"items[{i}].vector")
            with np.errstate(over="ignore"):  # as in query_vector
                vectors[i] = item.vector
    if to_embed:
        vectors[to_embed] = await embedder.embed([items[i].text or "" for i in to_embed])
    return vectors
