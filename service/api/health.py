"""Operations routes: GET /healthz (alive), /readyz (model loaded, backend and vector store answering; it names the
default model), /metrics."""

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from service.api.deps import get_services
from service.api.errors import ApiError, responses
from service.api.render import json_response
from service.encoders.base import Encoder
from service.errors import ServiceError
from service.model.registry import ModelRegistry
from service.settings import Settings

READYZ_TIMEOUT_S = 0.8
"""/readyz answers 503 when its check takes longer: under the 1 s default timeout of Kubernetes' probes, so a
probe gets the 503 and its reason rather than a timeout."""


class Health(BaseModel):
    status: Literal["ok", "ready"]
    model: str | None = None
    backend: str | None = None


class ReadinessCheck:
    """One readiness check (a token through the encoder, a vector store's ping) on a thread of its own, answered
    within `timeout_s`.

    Not asyncio.to_thread: under load the default executor is busy tokenizing, and /readyz queued behind it took
    up to 4.5 s with the encoder queue full. Concurrent probes share the check in flight, so a hung backend costs one
    thread, not one per probe; past the timeout the probe answers 503 while the check goes on.
    """

    def __init__(self, check: Callable[[], None], what: str, timeout_s: float) -> None:
        self.check = check
        self.what = what
        self.timeout_s = timeout_s
        self._running: asyncio.Future[None] | None = None

    async def __call__(self) -> None:
        """Raise ApiError 503 unless the check answers within timeout_s."""
        running = self._running
        if running is None or running.done() or running.get_loop() is not asyncio.get_running_loop():
            running = self._running = self._start()
        try:
            await asyncio.wait_for(asyncio.shield(running), self.timeout_s)
        except TimeoutError:
            raise ApiError(503, f"not ready: {self.what} did not answer in {self.timeout_s:g} s") from None
        except Exception as exc:  # a probe answers 503 for any failure of the check, never 500
            raise ApiError(503, f"not ready: {exc.message if isinstance(exc, ServiceError) else repr(exc)}") from exc

    def _start(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        def run() -> None:
            error: BaseException | None = None
            try:
                self.check()
            except BaseException as exc:  # handed to the awaiting probe, whatever it is
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed during a slow check (shutdown): nobody waits
                loop.call_soon_threadsafe(settle, error)

        threading.Thread(target=run, name="o2v-readyz", daemon=True).start()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved" log
        return future


def served_model(registry: ModelRegistry, configured: Encoder) -> dict[str, str]:
    """The default model's name and backend (the promoted model, read from the registry at each call as every route
    does, else the configured one): what requests that name no model are served by. Adapted models are ONNX
    directories (service/encoders/pool.py)."""
    name = registry.default()
    return {"model": name, "backend": configured.backend if name == configured.name else "onnx"}


def build_router(settings: Settings, encoder: Encoder) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Health)
    async def healthz() -> Response:
        """Liveness: the process answers."""
        return json_response({"status": "ok"})

    check = ReadinessCheck(encoder.check, f"the {encoder.backend} backend", READYZ_TIMEOUT_S)
    store_checks: dict[int, ReadinessCheck] = {}  # per registry (an app's lifespan may make a new one)

    @router.get("/readyz", response_model=Health, responses=responses(503))
    async def readyz(request: Request) -> Response:
        """Readiness: one token goes through the encoder (for SageMaker: a real call to the endpoint), answered
        within READYZ_TIMEOUT_S (0.8 s) even when the encoder queue is full; a remote vector store answers too."""
        await check()
        collections = get_services(request).collections
        if collections is not None and collections.remote:  # a remote vector store down: a gateway that cannot serve
            store = store_checks.get(id(collections))
            if store is None:
                store_checks.clear()
                store = store_checks[id(collections)] = ReadinessCheck(
                    collections.check, "the vector store", READYZ_TIMEOUT_S
                )
            await store()
        return json_response({"status": "ready", **served_model(get_services(request).model_registry, encoder)})

    @router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics(request: Request) -> Response:
        """Prometheus text format."""
        return Response(get_services(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return router
