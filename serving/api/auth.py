"""Who is calling: an API key (``Authorization: Bearer ...`` or ``X-API-Key``) with the route's scope."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from threading import Lock
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from churn.clock import utc_now
from churn.tables import api_keys
from serving.api.errors import ApiError
from serving.api_keys import ApiKey, Scope, find_key

_bearer = HTTPBearer(auto_error=False, description="An API key from `churn apikey create`.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key, as a header.")

# last_used_at is a hint for people tidying keys, not an audit log: written at most once a minute per
# key, after the response, and given up if the database is busy (a scoring holding SQLite's write
# lock must never hold up a read).
_TOUCH_EVERY_S = 60.0
_touched_lock = Lock()
log = logging.getLogger("churn.api")


def require(scope: Scope) -> Callable[..., ApiKey]:
    """A dependency that admits only a valid, unrevoked key holding ``scope`` (or admin)."""

    def check(
        request: Request,
        background: BackgroundTasks,
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
        if _due(request, key):
            background.add_task(_touch, request.app.state.engine, key.key_id)
        request.state.api_key = key
        return key

    return check


def _due(request: Request, key: ApiKey) -> bool:
    touched: dict[int, float] = request.app.state.__dict__.setdefault("_keys_touched", {})
    now = time.monotonic()
    with _touched_lock:
        if now - touched.get(key.key_id, -_TOUCH_EVERY_S) < _TOUCH_EVERY_S:
            return False
        touched[key.key_id] = now
    return True


def _touch(engine: Engine, key_id: int) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(
                api_keys.update().where(api_keys.c.key_id == key_id).values(last_used_at=utc_now())
            )
    except SQLAlchemyError as exc:
        log.debug("last_used_at of key %s not written: %s", key_id, type(exc).__name__)
