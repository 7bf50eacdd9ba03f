"""Bearer keys: `require_api_key` guards write routes with O2V_API_KEY; `require_read_key` guards every other route
with O2V_READ_API_KEY (the write key reads too) except the probes and the scrape target in OPEN_PATHS.

Add `dependencies=[Depends(require_api_key)]` to a write route; the app applies `read_guard(settings)` to every
route, so a new route is guarded by default. With no key set a dependency lets everything through. `may_write(request)`
tells a route whether the caller holds write rights (the drift streams use it: only they may create a stream).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from service.api.errors import ApiError
from service.settings import Settings

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/ping", "/metrics"})
"""Routes no key guards: the orchestrators' probes (kubelet, SageMaker) and Prometheus' scrape, which carry no
credentials; /metrics shows counts, latencies and drift statistics per stream name, never texts, ids or metadata."""

_bearer = HTTPBearer(auto_error=False, description="O2V_API_KEY (writes) or O2V_READ_API_KEY (reads), when set")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _matches(given: str, key: SecretStr | None) -> bool:
    return key is not None and secrets.compare_digest(given.encode(), key.get_secret_value().encode())


def _token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _refuse(which: str) -> ApiError:
    return ApiError(
        401,
        f"this route needs {which}: send 'Authorization: Bearer <key>'",
        field="Authorization",
        headers={"WWW-Authenticate": "Bearer"},
    )


def may_write(request: Request) -> bool:
    """Whether the caller may use write routes: no write key is set, or it sent that key."""
    key = request.app.state.settings.api_key
    return key is None or _matches(_token(request), key)


async def require_api_key(request: Request, credentials: Credentials) -> None:
    if not may_write(request):
        raise _refuse("the API key (O2V_API_KEY)")


async def require_read_key(request: Request, credentials: Credentials) -> None:
    """Reads answer texts, metadata and ids: with O2V_READ_API_KEY set they need it (or the write key)."""
    settings = request.app.state.settings
    route = request.scope.get("route")
    if settings.read_api_key is None or getattr(route, "path", None) in OPEN_PATHS:
        return
    given = _token(request)
    if not (_matches(given, settings.read_api_key) or _matches(given, settings.api_key)):
        raise _refuse("an API key (O2V_READ_API_KEY or O2V_API_KEY)")


def read_guard(settings: Settings) -> list[Any]:
    """The app-wide dependencies: `require_read_key` when O2V_READ_API_KEY is set, else none, so that the OpenAPI
    schema declares the bearer scheme on reads only when they need it."""
    return [Depends(require_read_key)] if settings.read_api_key is not None else []
