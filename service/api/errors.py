"""Every error leaves the API in one shape: {"error": {"code", "message", "details": [{field, reason}]}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.domain.hypervolume import Cancelled
from service.errors import (
    AlreadyExists,
    AsktellError,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TooLarge,
    Unauthenticated,
)

log = logging.getLogger(__name__)
UI_ROOT = "/ui"
CLIENT_CLOSED = 499  # the client went away before the answer: nobody reads this status

STATUS = {
    InvalidArgument: 422,
    NotFound: 404,
    AlreadyExists: 409,
    Conflict: 409,
    Unauthenticated: 401,
    PermissionDenied: 403,
    TooLarge: 413,
}
_HTTP_CODES = {
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_argument",
    503: "unavailable",
}


def error_body(code: str, message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


class BodyTooLarge(StarletteHTTPException):
    """Raised from a body stream past the limit. An HTTPException, so that a route that is reading the body
    lets it through (FastAPI's body parser turns any other error there into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body over the limit of {limit} bytes")
        self.limit = limit

    def body(self) -> dict[str, Any]:
        return error_body("too_large", str(self.detail), [{"field": "body", "reason": f"at most {self.limit} bytes"}])


def _field_path(loc: tuple[Any, ...]) -> str:
    """("body", "params", 1, "low") -> "params[1].low"; path and query params keep their name."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path") else list(loc)
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def _database_unreachable(error: BaseException) -> bool:
    """Lost or refused database connections (a restart, a failover) and transactions the database aborted to
    break a deadlock: nothing was committed and a retry succeeds, as opposed to a bug."""
    if isinstance(error, OperationalError | InterfaceError | SqlTimeoutError | OSError | TimeoutError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    return bool(error.connection_invalidated) or getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AsktellError)
    async def domain_error(request: Request, error: AsktellError) -> Response:
        status = next((s for cls, s in STATUS.items() if isinstance(error, cls)), 500)
        if status == 401 and request.url.path.startswith(UI_ROOT) and request.method == "GET":
            return RedirectResponse(f"{UI_ROOT}/sign-in", status_code=303)
        details = (
            [{"field": p.field, "reason": p.reason} for p in error.problems]
            if isinstance(error, InvalidArgument)
            else None
        )
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_body(error.code, error.message, details), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"field": _field_path(tuple(e["loc"])), "reason": e["msg"]} for e in error.errors()]
        message = "; ".join(f"{d['field']}: {d['reason']}" for d in details)
        return JSONResponse(error_body("invalid_argument", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # a body the framework could not read (not UTF-8, say): like bad JSON, a 422
            details = [{"field": "body", "reason": str(error.detail)}]
            return JSONResponse(error_body("invalid_argument", f"body: {error.detail}", details), status_code=422)
        if isinstance(error, BodyTooLarge):
            return JSONResponse(error.body(), status_code=413)
        code = _HTTP_CODES.get(error.status_code, "error")
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(Cancelled)
    async def client_gone(request: Request, _: Cancelled) -> Response:
        log.info("%s %s: the client went away; its computation stopped", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        if _database_unreachable(error):
            # Retryable by design: nothing was committed. Logged without the (driver-specific) details.
            log.warning("database unavailable: %s", type(error).__name__)
            return JSONResponse(
                error_body("unavailable", "the database is unavailable; nothing was changed, retry"),
                status_code=503,
                headers={"Retry-After": "1"},
            )
        log.exception("unhandled error", exc_info=error)
        return JSONResponse(error_body("internal", "internal server error; nothing was changed"), status_code=500)
