"""A read that raced another replica's re-embedding. Replicas keep no state: each request reads the collection's
catalog row, and a Bounded read may be a moment old, so a replica can still name the items collection that another
replica's re-embedding has just replaced and dropped. The read then fails on a missing collection while the catalog
row (read again Strong) is still there: `Moved`. `read_once_more_if_moved` takes the row's current items collection
and runs the read once more inside the same request, instead of answering 503 for a state that is already settled.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from service.index.errors import StoreUnavailable

if TYPE_CHECKING:
    from service.index.engines.milvus.collection import MilvusCollection

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class Moved(StoreUnavailable):
    """Collection `name`'s items collection was replaced through another replica during the call (503 if a second
    try meets it again: the collection is being re-embedded over and over)."""


def read_once_more_if_moved(
    read: Callable[Concatenate[MilvusCollection, P], R],
) -> Callable[Concatenate[MilvusCollection, P], R]:
    """A read method of MilvusCollection that, on Moved, takes the catalog row's items collection and tries again."""

    @functools.wraps(read)
    def once_more(collection: MilvusCollection, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return read(collection, *args, **kwargs)
        except Moved as exc:
            log.info("collection %r was re-embedded through another replica: %s; reading again", collection.name, exc)
            collection.owner.follow(collection)
            return read(collection, *args, **kwargs)

    return once_more
