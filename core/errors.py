"""Domain errors and the handlers that render every failure in the one error envelope."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from core.logging import get_logger
from core.storage.errors import StorageBusy, StorageUnavailable

log = get_logger(__name__)


class AppError(Exception):
    """An error a client can act on: a stable UPPER_SNAKE code, an HTTP status, a message."""

    status_code = 400
    code = "BAD_REQUEST"
    message = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.message
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.message)


class NotFound(AppError):
    status_code, code, message = 404, "NOT_FOUND", "Not found"


class Conflict(AppError):
    status_code, code, message = 409, "CONFLICT", "Conflict"


class Unauthorized(AppError):
    status_code, code, message = 401, "UNAUTHORIZED", "Authentication required"

    def __init__(self, message: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(AppError):
    status_code, code, message = 403, "FORBIDDEN", "You are not allowed to do this"


class InvalidToken(Unauthorized):
    code, message = "INVALID_TOKEN", "The access token is invalid or expired"


class InvalidCredentials(Unauthorized):
    code, message = "INVALID_CREDENTIALS", "Invalid email or password"


class ValidationFailed(AppError):
    status_code, code, message = 422, "VALIDATION_ERROR", "The request is not valid"


class PreconditionFailed(AppError):
    status_code, code, message = 412, "PRECONDITION_FAILED", "The resource has changed"


class RateLimited(AppError):
    status_code, code, message = 429, "RATE_LIMITED", "Too many requests"


def envelope_body(code: str, message: str, request_id: str | None) -> dict[str, Any]:
    """The envelope of an error that has no field errors."""
    return {
        "success": False,
        "message": message,
        "code": code,
        "errors": [],
        "requestId": request_id,
    }


def envelope(
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = envelope_body(code, message, structlog.contextvars.get_contextvars().get("request_id"))
    body["errors"] = errors or []
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def app_error_response(exc: AppError) -> JSONResponse:
    return envelope(exc.status_code, exc.code, exc.message, exc.errors, exc.headers, exc.extra)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _on_app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return app_error_response(exc)


class InvalidJson(AppError):
    status_code, code, message = 400, "INVALID_JSON", "The request body is not valid JSON"


def validation_error(exc: RequestValidationError) -> AppError:
    """FastAPI's validation failure as our error (422, one entry per field)."""
    raw = exc.errors()
    if any(err.get("type") == "json_invalid" for err in raw):
        return InvalidJson()
    errors = [{"field": _field(err.get("loc", ())), "message": str(err.get("msg"))} for err in raw]
    return ValidationFailed(errors=errors)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return app_error_response(validation_error(exc))


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path.

    Starlette's 405 names only the first route whose path matched, so `/reservations/list`
    said `DELETE` (from `/reservations/{id}`) and `/events/{id}` omitted PATCH and DELETE.
    """
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        if route.path and route.methods:
            regex, _, _ = compile_path(route.path)
            if regex.match(request.scope["path"]):
                methods |= route.methods
    return ", ".join(sorted(methods))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
    code = codes.get(exc.status_code, "HTTP_ERROR")
    message = (
        "Route not found"
        if exc.status_code == 404 and exc.detail == "Not Found"
        else str(exc.detail)
    )
    return envelope(exc.status_code, code, message, headers=headers)


class StorageBusyError(AppError):
    status_code, code, message = 503, "STORAGE_BUSY", "The database is busy; retry shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class StorageUnavailableError(AppError):
    status_code, code = 503, "STORAGE_UNAVAILABLE"
    message = "The database connection failed; retry shortly (with the same Idempotency-Key)"

    def __init__(self, reason: Exception) -> None:
        log.warning("storage_unavailable", reason=str(reason))
        super().__init__(headers={"Retry-After": "1"})


def storage_error(exc: StorageBusy | StorageUnavailable) -> AppError:
    """A storage failure the client can retry, as our error (rendered by the route when it
    happens inside one, so a contract route answers in its own shape)."""
    if isinstance(exc, StorageBusy):
        return StorageBusyError()
    return StorageUnavailableError(exc)


async def _on_storage_failure(_: Request, exc: Exception) -> JSONResponse:
    """Outside an ApiRoute (which renders these in its own shape): the envelope."""
    assert isinstance(exc, StorageBusy | StorageUnavailable)
    return app_error_response(storage_error(exc))


async def _on_unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", exc_info=exc)
    return envelope(500, "INTERNAL_ERROR", "Something went wrong on our side")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _on_app_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(StorageBusy, _on_storage_failure)
    app.add_exception_handler(StorageUnavailable, _on_storage_failure)
    app.add_exception_handler(Exception, _on_unhandled)
