"""The collection layer's exceptions; the API maps each to one status code and names the field at fault."""

from __future__ import annotations


class CollectionError(ValueError):
    """A caller's mistake about a collection; `field` names the request field (or path part) at fault."""

    status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidRequest(CollectionError):
    """A value the collection cannot take: bad name, wrong vector size, limit exceeded, unknown option."""


class NotFound(CollectionError):
    """The collection or item does not exist."""

    status = 404


class Conflict(CollectionError):
    """The collection exists with settings other than those asked for."""

    status = 409


class StoreUnavailable(CollectionError):
    """The vector store (a Milvus server) did not answer or failed; the same request may succeed later."""

    status = 503
