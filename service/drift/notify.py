"""Status changes go out as one structured JSON log line and, if configured, a webhook POST from a background thread.

A webhook URL is a secret: its userinfo, a token in its query, or its path itself (Slack's and Teams' hooks) lets
anyone post. The log shows only its origin and errors with the URL masked (`shown`); a `user:password@` is sent as
HTTP Basic authorization, so urllib, which would take it for a port and quote it in its error, never sees it.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from service.uris import MASK, masked

log = logging.getLogger("service.drift")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is an HTTPError, never followed: urllib would resend the request as a GET, with its Authorization
    header, to wherever the Location points (another host, a loopback admin port)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirects)
"""urllib without redirects: the webhook here and `o2v drift --url` (service/drift/commands.py) use it."""
MAX_ANSWER_BYTES = 65_536


class StatusNotifier:
    """Logs every event at once; POSTs it to `url` from its own daemon thread with a timeout and retries.

    The queue is bounded: if the webhook is down for long, the oldest news is dropped rather than memory grown.
    """

    def __init__(self, url: str | None, timeout_s: float = 2.0, retries: int = 3, backoff_s: float = 0.5) -> None:
        if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"O2V_DRIFT_WEBHOOK_URL must be an http(s) URL, not {url.split(':', 1)[0]!r}")
        self.headers = {"Content-Type": "application/json"}
        if url is not None:
            url = self._userinfo_to_header(url)
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=256)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0

    def notify(self, event: dict[str, Any], deliver: bool = True) -> None:
        """Log the event; queue it for the webhook too when `deliver` (changes into or out of a verdict only log)."""
        level = logging.WARNING if event.get("to") in ("warning", "drift") else logging.INFO
        log.log(level, json.dumps(event, sort_keys=True, default=str))
        if self.url is None or not deliver:
            return
        self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.error(json.dumps({"event": "drift_webhook_dropped", "stream": event.get("stream")}))

    def _userinfo_to_header(self, url: str) -> str:
        """`url` without its `user:password@`, which goes into an Authorization header instead."""
        parts = urllib.parse.urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        unquote = urllib.parse.unquote
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
        self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

    def shown(self, text: str) -> str:
        """`text` as the log may show it: the webhook's path and query (which may be its token) replaced by `***`,
        then service.uris.masked (userinfo, token parameters) for any other URI it quotes."""
        parts = urllib.parse.urlsplit(self.url or "")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for quoted in (target, parts.path):
            if len(quoted) > 1:
                text = text.replace(quoted, f"/{MASK}")
        return masked(text)

    def origin(self) -> str:
        """scheme://host[:port] of the webhook: enough to tell which one, nothing that lets anyone post."""
        parts = urllib.parse.urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.netloc}"

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (within `timeout_s`) and stop the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="drift-webhook", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, default=str).encode()
        for attempt in range(self.retries + 1):
            try:
                request = urllib.request.Request(self.url or "", data=body, method="POST", headers=self.headers)
                with OPENER.open(request, timeout=self.timeout_s) as response:
                    response.read(MAX_ANSWER_BYTES)  # the answer is not used: never hold a huge one
                self.delivered += 1
                return
            except (OSError, ValueError, http.client.HTTPException) as exc:
                # OSError: URLError, HTTPError, timeouts, refusals. ValueError and HTTPException (InvalidURL, which
                # quotes the URL) answer the same on every try, as a redirect does
                redirected = isinstance(exc, urllib.error.HTTPError) and 300 <= exc.code < 400
                if attempt == self.retries or redirected or not isinstance(exc, OSError):
                    self.failed += 1
                    hint = {"hint": "redirects are not followed: set the final URL"} if redirected else {}
                    failed = {"event": "drift_webhook_failed", "webhook": self.origin(), "error": self.shown(str(exc))}
                    log.error(json.dumps({**failed, **hint}))
                    return
                time.sleep(self.backoff_s * 2**attempt)
