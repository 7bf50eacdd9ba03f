"""The collection layer's exceptions: its branch of the service's error hierarchy (service/errors.py), each carrying
its status and the field at fault."""

from __future__ import annotations

import errno
import os
import sqlite3

from service import errors


class CollectionError(errors.ServiceError):
    """A failure about a collection; `field` names the request field (or path part) at fault."""


class InvalidRequest(CollectionError, errors.InvalidRequest):
    """A value the collection cannot take: bad name, wrong vector size, limit exceeded, unknown option."""


class NotFound(CollectionError, errors.NotFound):
    """The collection or item does not exist."""


class Conflict(CollectionError, errors.Conflict):
    """The collection exists with settings other than those asked for."""

    @classmethod
    def reembed_cancelled(cls) -> Conflict:
        return cls("re-embedding was cancelled; the collection is unchanged", "name")

    @classmethod
    def caller_vectors_width(cls, dim: int | None, model: str, new_dim: int, count: int | None = None) -> Conflict:
        """Re-embedding with `model` would change the width, but items hold vectors callers sent at the old one."""
        items = "item(s)" if count is None else f"{count} item(s)"
        message = f"{items} hold vectors callers sent, of {dim} numbers; {model!r} gives {new_dim}"
        return cls(message + ": drop those items first", "model")


class StoreUnavailable(CollectionError, errors.Unavailable):
    """The vector store (a Milvus server) did not answer or failed; the same request may succeed later."""


class Unusable(CollectionError, errors.Conflict):
    """The collection exists but its stored settings or layout are ones the engine cannot run (a hand-edited data
    directory; a layout `o2v index migrate` brings up to date), or its files are damaged; it is refused on open
    rather than handed to FAISS, and the other collections are unaffected."""

    @classmethod
    def damaged(cls, name: str, problem: str) -> Unusable:
        return cls(f"collection {name!r} is damaged ({problem}): restore it from a backup or drop it", "name")


def out_of_files(exc: BaseException) -> bool:
    """Whether `exc` comes from the process (or system) having no file descriptor left: OSError EMFILE/ENFILE, or a
    SQLite error, which hides the errno ("unable to open database file"), when opening /dev/null fails too."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    if isinstance(exc, sqlite3.Error):
        try:
            os.close(os.open(os.devnull, os.O_RDONLY))
        except OSError as probe:
            return probe.errno in (errno.EMFILE, errno.ENFILE)
    return False


def raise_if_out_of_files(exc: BaseException) -> None:
    """StoreUnavailable (503, try again) in place of `exc` when it means the process has no file descriptor left."""
    if out_of_files(exc):
        raise StoreUnavailable("the server has no file descriptors left; try again shortly") from exc
