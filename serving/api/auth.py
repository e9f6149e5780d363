"""Who is calling: an API key (``Authorization: Bearer ...`` or ``X-API-Key``) with the route's scope."""

from __future__ import annotations

import time
from collections.abc import Callable
from threading import Lock
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from churn.clock import utc_now
from churn.tables import api_keys
from serving.api.errors import ApiError
from serving.api_keys import ApiKey, Scope, find_key

_bearer = HTTPBearer(auto_error=False, description="An API key from `churn apikey create`.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key, as a header.")

# last_used_at is a hint for people tidying keys, not an audit log: write it at most once a minute
# per key rather than on every request.
_TOUCH_EVERY_S = 60.0
_touched: dict[int, float] = {}
_touched_lock = Lock()


def require(scope: Scope) -> Callable[..., ApiKey]:
    """A dependency that admits only a valid, unrevoked key holding ``scope`` (or admin)."""

    def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> ApiKey:
        secret = bearer.credentials if bearer else header
        if not secret:
            raise ApiError(401, "an API key is required: send `Authorization: Bearer <key>`")
        engine = request.app.state.engine
        with engine.connect() as connection:
            key = find_key(connection, secret)
        if key is None or key.revoked_at is not None:
            raise ApiError(401, "this API key is not valid (unknown or revoked)")
        if not key.allows(scope):
            raise ApiError(403, f"this API key ({key.name}) lacks the scope {scope.value}")
        _touch(request, key)
        request.state.api_key = key
        return key

    return check


def _touch(request: Request, key: ApiKey) -> None:
    now = time.monotonic()
    with _touched_lock:
        if now - _touched.get(key.key_id, -_TOUCH_EVERY_S) < _TOUCH_EVERY_S:
            return
        _touched[key.key_id] = now
    with request.app.state.engine.begin() as connection:
        connection.execute(
            api_keys.update().where(api_keys.c.key_id == key.key_id).values(last_used_at=utc_now())
        )
