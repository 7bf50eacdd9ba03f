"""Status changes go out as one structured JSON log line and, if configured, a webhook POST from a background thread."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

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
            request = urllib.request.Request(
                self.url or "", data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with OPENER.open(request, timeout=self.timeout_s) as response:
                    response.read(MAX_ANSWER_BYTES)  # the answer is not used: never hold a huge one
                self.delivered += 1
                return
            except OSError as exc:  # URLError, HTTPError, timeouts and refused connections are all OSErrors
                redirected = isinstance(exc, urllib.error.HTTPError) and 300 <= exc.code < 400
                if attempt == self.retries or redirected:  # a redirect answers the same on every try
                    self.failed += 1
                    hint = {"hint": "redirects are not followed: set the final URL"} if redirected else {}
                    log.error(json.dumps({"event": "drift_webhook_failed", "error": str(exc), **hint}))
                    return
                time.sleep(self.backoff_s * 2**attempt)
