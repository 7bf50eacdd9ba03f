"""The service's one error hierarchy: every failure a caller should see carries its HTTP status, error type, message,
the request field at fault and the CLI's exit code itself, so the API and `o2v` answer it without a mapping.

Subclasses are named by meaning (InvalidRequest, NotFound, Conflict, Unavailable, BadGateway); each domain derives
its own from them (service/index/errors.py, service/encoders/base.py, service/drift/errors.py). A subclass that sets
only `status` gets the type and exit code of that status (STATUS_TYPES, EXIT_CODES). Imports nothing heavy.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from service.uris import masked

STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    507: "insufficient_storage",
}
EX_USAGE = 2  # what argparse exits with: the caller asked for something that cannot be done as asked
EX_SOFTWARE = 70  # sysexits.h: an internal error
EX_UNAVAILABLE = 69  # sysexits.h: a service (the vector store, the model backend) is unavailable; try again later
EX_PROTOCOL = 76  # sysexits.h: the remote end answered, but not in its protocol
EX_IOERR = 74  # sysexits.h: an input/output error (the disk is full)
EX_TEMPFAIL = 75  # sysexits.h: a temporary failure (a database another writer holds locked); retry the same command
EXIT_CODES = {502: EX_PROTOCOL, 503: EX_UNAVAILABLE, 507: EX_IOERR}


def exit_code_of(status: int) -> int:
    """`o2v`'s exit code for an error of this HTTP status: 2 for the caller's mistakes (4xx), 69/76 for a backend,
    74 for a full disk."""
    return EXIT_CODES.get(status, EX_USAGE if status < 500 else EX_SOFTWARE)


class ServiceError(Exception):
    """A failure reported to the caller as it is: `{"error": {"type", "message", "field"}}` with `status` over HTTP,
    `message` on stderr and `exit_code` from `o2v`. `field` names the request field (or path part) at fault."""

    status: int = 500
    type: str = STATUS_TYPES[500]
    exit_code: int = EX_SOFTWARE
    field: str | None = None  # the class's default; an instance may name another
    headers: Mapping[str, str] = MappingProxyType({})  # HTTP headers the answer carries

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that sets its status but not its type or exit code gets the ones that status means."""
        super().__init_subclass__(**kwargs)
        if "status" in cls.__dict__:
            if "type" not in cls.__dict__:
                cls.type = STATUS_TYPES.get(cls.status, "error")
            if "exit_code" not in cls.__dict__:
                cls.exit_code = exit_code_of(cls.status)

    def __init__(self, message: str, field: str | None = None) -> None:
        message = masked(message)  # a backend's error may quote a URI with its credentials (service/uris.py)
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class InvalidRequest(ServiceError):
    """A value the service cannot take: a bad name or option, a wrong size, a limit exceeded (422)."""

    status = 422


class NotFound(ServiceError):
    """The thing asked for does not exist (404). The named constructors keep each message in one place."""

    status = 404

    @classmethod
    def collection(cls, name: str) -> NotFound:
        return cls(f"no collection {name!r}", "name")

    @classmethod
    def dropped(cls, name: str) -> NotFound:
        """The collection went away while the request was using it (a drop here or through another replica)."""
        return cls(f"collection {name!r} was dropped", "name")

    @classmethod
    def item(cls, collection: str, item_id: str) -> NotFound:
        return cls(f"no item {item_id!r} in collection {collection!r}", "item_id")

    @classmethod
    def stream(cls, name: str) -> NotFound:
        return cls(f"no drift stream named {name!r}", "stream")


class Conflict(ServiceError):
    """The request contradicts what exists: other settings, another model, work already running (409)."""

    status = 409


class Unavailable(ServiceError):
    """A backend (the vector store, the model endpoint) or the server itself cannot answer now; the same request may
    succeed later (503, answered with Retry-After; `o2v` exits 69)."""

    status = 503


class BadGateway(ServiceError):
    """A backend answered, but not in its documented shape: retrying will not help (502; `o2v` exits 76)."""

    status = 502


class Busy(Unavailable):
    """A database another thread or process holds locked for longer than the wait allows (SQLite's "database is
    locked"); the same request succeeds once it is released (503 with Retry-After; `o2v` exits 75, EX_TEMPFAIL)."""

    exit_code = EX_TEMPFAIL


class InsufficientStorage(ServiceError):
    """The disk (or the process' file-size limit) is full: nothing of the write was kept; free space and retry
    (507; `o2v` exits 74)."""

    status = 507


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL = 5, 6, 13


def storage_failure(exc: BaseException) -> ServiceError | None:
    """The ServiceError a failure of the disk or of SQLite's locking means, or None when it means neither: a full
    disk (ENOSPC, a quota, the file-size limit, SQLite's "database or disk is full") is a 507, a database still
    locked after SQLite's busy timeout a 503. Both say that nothing was written, which holds: SQLite rolls the
    transaction back, and every file the service replaces is written aside and renamed only once complete."""
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return InsufficientStorage(f"the disk is full ({exc.strerror}); nothing was written: free space and retry")
    if isinstance(exc, sqlite3.OperationalError):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code == SQLITE_FULL or "disk is full" in str(exc):
            return InsufficientStorage("the disk is full (SQLite); nothing was written: free space and retry")
        if code in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in str(exc):
            return Busy("the collection's database is locked by a long write (a re-embedding?); try again shortly")
    return storage_failure(exc.__cause__) if exc.__cause__ is not None else None
