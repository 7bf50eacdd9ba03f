"""Connection limits, enforced in uvicorn's HTTP protocol below the ASGI app, where a request is still bytes.

uvicorn's httptools protocol has no bound on a request's head (a 256 MB header is buffered whole and blocks the
event loop), no timeout on a head or a body that trickles in (a connection sending a byte every few seconds is held
forever), and no bound on connections below the fd limit (1,100 such connections take every descriptor, so even
/healthz gets "connection reset"). `LimitedHttpProtocol` adds the three:

- a head over `max_header_bytes` (request line and headers) or with more than `max_headers` headers gets 431 as
  soon as the bytes received pass the limit, so at most the limit plus one socket read is ever held;
- a head not complete within `header_timeout_s` of the connection (or of the previous answer, on a kept-alive
  connection), or a body not complete within `body_timeout_s` of its head, gets 408 and the connection is closed;
- past `max_connections` open connections, the connection that has waited longest on its client (for a head, a
  body, or idle between requests) is closed to make room; a connection whose request the app is working on is
  never closed. When every connection is busy, the new one gets 503. A probe sends its whole request at once, so it
  always finds room: slow clients give way to it. uvicorn's own `limit_concurrency` is not used: it answers 503 to
  every request, probes included, once the connections held by slow clients reach it.

`o2v serve` runs uvicorn with it (`uvicorn_http(settings)`); the limits are O2V_* settings (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service.errors import STATUS_TYPES
from service.settings import Settings

MAX_HEADERS = 100
"""Headers in one request; beyond it a 431. Clients send 10 to 20; 100 is Apache's LimitRequestFields default."""
MAX_HEADER_BYTES = 65_536
"""Request line and headers of one request; beyond it a 431, before buffering more. 64 KiB is eight times nginx's
default (4 buffers of 8 KiB) and Node's 16 KiB four times over: no real client's head comes near it."""

log = logging.getLogger("o2v.connections")
FD_RESERVE = 64
"""Descriptors kept for everything but client connections besides the open collections' (the model, logs, SQLite
journals, the drift state, a backup being written)."""
Phase = Literal["head", "body", "app"]


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        reserve = FD_RESERVE + 3 * settings.limits.max_open_collections  # an open collection holds 3 files
        return cls(
            MAX_HEADER_BYTES,
            MAX_HEADERS,
            settings.server.http_timeouts_s.header,
            settings.server.http_timeouts_s.body,
            usable_connections(settings.server.max_connections, reserve),
        )


def usable_connections(wanted: int, reserve: int) -> int:
    """`wanted`, or fewer when the process' soft fd limit (ulimit -n) minus `reserve` is lower (logged): a cap
    above the fd limit would let slow clients take every descriptor before it applies."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft - reserve >= wanted:
        return wanted
    usable = max(8, soft - reserve)
    log.warning(
        "O2V_MAX_CONNECTIONS=%d is above what the fd limit allows (ulimit -n %d, %d kept for files): using %d",
        wanted,
        soft,
        reserve,
        usable,
    )
    return usable


class HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head over its limit (httptools then raises its own error)."""


def error_bytes(status: int, message: str, field: str | None = None, retry: int | None = None) -> bytes:
    """A whole HTTP/1.1 answer in the app's error shape, with `connection: close` (and Retry-After: `retry`)."""
    body = orjson.dumps({"error": {"type": STATUS_TYPES.get(status, "error"), "message": message, "field": field}})
    head = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        b"retry-after: %d\r\n" % retry if retry is not None else b"",
        b"\r\n",
    ]
    return b"".join(head) + body


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of the module docstring."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.phase: Phase = "head"
        # this server's connections waiting on their client (for a head or a body, or idle), longest first: a
        # dict keeps insertion order, so the one to close for room is found in O(1)
        self.waiting: dict[LimitedHttpProtocol, None] = server_state.__dict__.setdefault("o2v_waiting", {})
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes received since the head began (a few body bytes may be counted: bounded)
        self._head_size = 0  # the request line and the headers parsed so far
        self._header_count = 0
        self._refusal: tuple[str, str] | None = None  # (message, field) of a 431 decided in a parser callback

    # states
    def _arm(self, seconds: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _await_head(self) -> None:
        self.phase = "head"
        self.waiting.pop(self, None)
        self.waiting[self] = None
        self._arm(self.limits.header_timeout_s)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.phase == "app":
            return
        if self.phase == "head":
            limit = f"the request head did not arrive within {self.limits.header_timeout_s:g} s"
            self._close(error_bytes(408, limit, "headers") if self._head_bytes else None)
        elif self.cycle is not None and self.cycle.response_started:  # answered early (a 413): no second answer
            self._close(None)
        else:
            self._close(error_bytes(408, f"the request body did not arrive within {self.limits.body_timeout_s:g} s"))

    def _close(self, answer: bytes | None) -> None:
        """Answer (unless the app already began to) and close; the app, if running, sees a disconnect."""
        self.waiting.pop(self, None)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                answer = None
            cycle.disconnected = True
            cycle.message_event.set()
        if answer is not None:
            self.transport.write(answer)
        self.transport.close()

    def _refuse_head(self, message: str, field: str) -> None:
        self._refusal = (message, field)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.limits.max_connections:  # closed ones leave it at connection_lost
            self._make_room()

    def _make_room(self) -> None:
        oldest = next(iter(self.waiting))  # never this one, the newest
        if oldest is self:
            log.warning("%d connections, each with a request in progress: refusing a new one", len(self.connections))
            self._close(error_bytes(503, "the server has no room for another connection; retry shortly", retry=1))
            return
        oldest._close(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.phase != "body":  # a head, or the next request's head while the app works on this one
            self._head_bytes += len(data)
        super().data_received(data)
        if self.phase != "body" and not self.transport.is_closing() and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head(self._head_limit_message(), "headers")
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parse error; a head refused by a callback (HeadTooLarge) gets its 431 instead."""
        if self._refusal is None:
            super().send_400_response(msg)
            return
        message, field = self._refusal
        log.warning("refused a request head from %s: %s", self.client, message)
        self._close(error_bytes(431, message, field))

    def _head_limit_message(self) -> str:
        return f"the request head is larger than the limit of {self.limits.max_header_bytes} bytes"

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = self._header_count = 0
        self._refusal = None

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        if self._head_size > self.limits.max_header_bytes:
            self._refuse_head(self._head_limit_message(), "url")
            raise HeadTooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse_head(f"the request has more than the limit of {self.limits.max_headers} headers", "headers")
            raise HeadTooLarge
        if self._head_size > self.limits.max_header_bytes:
            self._refuse_head(self._head_limit_message(), "headers")
            raise HeadTooLarge
        super().on_header(name, value)

    def handle_websocket_upgrade(self) -> None:
        """The connection goes to uvicorn's WebSocket protocol: it is no longer this one's to time or close."""
        self._disarm()
        self.waiting.pop(self, None)
        self.phase = "app"
        super().handle_websocket_upgrade()

    def on_headers_complete(self) -> None:
        self.phase = "body"
        self._arm(self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_bytes = 0
        self._disarm()
        if self.cycle is not None and self.cycle.response_complete:  # answered before its body ended (a 413)
            self._await_head()
        else:
            self.phase = "app"
            self.waiting.pop(self, None)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        idle = self.phase == "app" and not self.pipeline
        super().on_response_complete()
        if idle and not self.transport.is_closing():
            self._await_head()


def uvicorn_http(settings: Settings) -> Any:
    """uvicorn's `http` argument: the protocol class with the settings' limits bound (a partial pickles, so each
    worker process gets it)."""
    return functools.partial(LimitedHttpProtocol, limits=ConnectionLimits.from_settings(settings))
