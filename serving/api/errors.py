"""Every error the API answers is JSON: ``{"error": {"status": 404, "message": "...", "problems": []}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from churn.errors import UserFacingError

log = logging.getLogger("churn.api")

# A database that is restarting or failing over is back within seconds; clients may try again then.
DATABASE_RETRY_AFTER_S = 5
# SQLite's OperationalError also means a bad statement ("no such column"): only these say the file
# cannot be used right now. psycopg's OperationalError and InterfaceError are all about the connection
# or the server (unreachable, shutting down, out of resources).
_SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")


def database_unavailable(exc: DBAPIError) -> bool:
    """Whether a database error means the database cannot serve now (retry later), not a bug."""
    name = getattr(exc.orig, "sqlite_errorname", None)
    if name is None or exc.connection_invalidated:
        return True
    return name.startswith(_SQLITE_UNAVAILABLE)


class ApiError(Exception):
    """An error a client caused or must know about, with its HTTP status."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []


def error_body(status: int, message: str, problems: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "message": message}
    if problems:
        body["problems"] = problems
    return {"error": body}


ERROR_SCHEMA = {
    "description": "An error, as JSON",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "integer"},
                            "message": {"type": "string"},
                            "problems": {"type": "array", "items": {"type": "string"}},
                        },
                        "required": ["status", "message"],
                    }
                },
                "required": ["error"],
            }
        }
    },
}


def retry_later(message: str) -> JSONResponse:
    """A 503 the client should retry after a few seconds: the request was fine, the database busy or away."""
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    return JSONResponse(error_body(503, message), status_code=503, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer our errors, FastAPI's validation errors and unknown routes in the one JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.message, exc.problems), status_code=exc.status)

    @app.exception_handler(UserFacingError)
    async def _user_error(_request: Request, exc: UserFacingError) -> JSONResponse:
        return JSONResponse(error_body(422, str(exc)), status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_down(request: Request, exc: OperationalError | InterfaceError) -> JSONResponse:
        # The database is unreachable, restarting or cut the connection: the request was fine, so a
        # 503 to retry, not a 500. The pool's pre-ping reconnects once it is back, without a restart.
        # The reason (host, port) goes to the log, not to the client.
        if not database_unavailable(exc):
            raise exc  # a bug: the 500 and its traceback
        reason = str(exc.orig or exc).strip().splitlines()[0]
        log.warning("%s %s: the database is not available: %s", request.method, request.url.path, reason)
        return retry_later("the database is not available right now: try again shortly")

    @app.exception_handler(PoolTimeoutError)
    async def _overloaded(request: Request, exc: PoolTimeoutError) -> JSONResponse:
        # Every database connection of this worker stayed busy for the pool's whole timeout: more
        # requests arrive than it can serve. A 503 tells clients to back off, where a 500 says "bug".
        log.warning("%s %s: no database connection free: %s", request.method, request.url.path, exc)
        return retry_later("the API is busy: no database connection came free in time; try again shortly")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        ]
        first = f": {problems[0]}" if problems else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return JSONResponse(
            error_body(422, f"the request is not valid{first}{more}", problems), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )
