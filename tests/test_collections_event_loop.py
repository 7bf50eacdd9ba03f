"""The collection routes never block the event loop: while the engine waits, /healthz and /readyz answer at once.

The wait is real: the registry's `while_locked` hook, which creating and dropping a collection call on both engines
(and getting one, so listing too, on the embedded engine) with the registry's lock held, waits for the test, as a
slow Milvus round trip or a long drop would. A route that made such a call on the event loop would stall every
other request until the release.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.index_fixtures import use_store
from tests.test_collections_api import KEY, reviews_app

WAITING = [("PUT", "/collections/fresh"), ("DELETE", "/collections/old")]
"""Requests that wait in the hook on both engines."""
LISTING = [("GET", "/collections"), ("GET", "/collections/reviews")]
"""Requests that wait in it on the embedded engine only (it opens collections under the lock)."""
ANSWERS = {"PUT": 201, "DELETE": 204, "GET": 200}


def test_health_answers_while_collection_calls_wait_on_the_engine(tmp_path, store, monkeypatch) -> None:
    use_store(monkeypatch, store, tmp_path)
    with reviews_app(tmp_path) as client:
        assert client.put("/collections/old", headers=KEY).status_code == 201
        answers: dict[tuple[str, str], Any] = {}

        def send(method: str, path: str) -> None:
            answers[method, path] = client.request(method, path, headers=KEY)

        threads = [threading.Thread(target=send, args=request) for request in WAITING + LISTING]
        waits = set(WAITING + (LISTING if store == "faiss" else []))
        release = threading.Event()
        client.app.state.services.collections.while_locked = lambda operation, name: release.wait(30)
        try:
            for thread in threads:
                thread.start()
            time.sleep(0.5)  # the requests reach the lock within milliseconds
            assert waits.isdisjoint(answers), "a call did not wait in the hook"
            for path in ("/healthz", "/readyz", "/healthz"):
                probe = threading.Thread(target=send, args=("GET", path))
                started = time.monotonic()
                probe.start()
                probe.join(5)  # bounded even when the loop is blocked: the `finally` releases the calls
                assert not probe.is_alive(), f"{path} waited behind a collection call on the event loop"
                # the calls hold the lock for up to 30 s: an answer within a few seconds did not wait for them
                # (1 s failed on a machine at load average 13, where a thread's start alone can take that long)
                assert time.monotonic() - started < 3.0 and answers.pop(("GET", path)).status_code == 200
            assert waits.isdisjoint(answers), "health answered only once the calls were released"
        finally:
            release.set()
        for thread in threads:
            thread.join(30)
        assert {request: answers[request].status_code for request in WAITING + LISTING} == {
            (method, path): ANSWERS[method] for method, path in WAITING + LISTING
        }
