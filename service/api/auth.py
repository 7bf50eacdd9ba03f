"""`require_api_key`: the dependency that guards write routes with `Authorization: Bearer <O2V_API_KEY>`.

Add it to a router or route, `dependencies=[Depends(require_api_key)]`; with no key set it lets everything through.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="the O2V_API_KEY setting, when the server has one")


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    key = request.app.state.settings.api_key
    if not key:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), key.encode()):
        raise ApiError(
            401,
            "this route needs the API key: send 'Authorization: Bearer <O2V_API_KEY>'",
            field="Authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )
