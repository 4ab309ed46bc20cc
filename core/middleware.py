"""Pure ASGI middleware: request id, access log, metrics, security headers, body size limit,
load shedding."""

from __future__ import annotations

import json
import os
import re
import time

import structlog
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import envelope_body
from core.logging import get_logger
from core.metrics import REQUEST_LATENCY

log = get_logger("ticketboss.access")
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=15552000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-dns-prefetch-control", b"off"),
    (b"x-download-options", b"noopen"),
    (b"x-permitted-cross-domain-policies", b"none"),
    (b"origin-agent-cluster", b"?1"),
    (b"x-xss-protection", b"0"),
]
CSP = b"content-security-policy"
# API responses (JSON, files) may load nothing at all.
API_CSP = (CSP, b"default-src 'none'; frame-ancestors 'none'")
# HTML pages (the web front, /docs, /redoc) load only the app's own files: no inline script or
# style, no inline handlers, no other origin. A route may send its own policy instead.
PAGE_CSP = (
    CSP,
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"font-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    b"base-uri 'none'; form-action 'self'",
)


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit; rendered as 413."""

    def __init__(self) -> None:
        super().__init__(413, "The request body is too large")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        # Only clients that accept gzip go through the compressing wrapper (responses > 1 KiB).
        self.gzip_app = GZipMiddleware(app, minimum_size=1024)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        response_started = False
        path = scope["path"]

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                policy = _policy(headers)
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                if policy is not None:
                    headers.append(policy)
                message["headers"] = headers
            await send(message)

        try:
            if _declared_length(scope) > self.max_body_bytes:
                await _too_large(send_wrapper, request_id)
            else:
                app = self.gzip_app if _accepts_gzip(scope) else self.app
                await app(scope, _limited(receive, self.max_body_bytes), send_wrapper)
        except BodyTooLarge:
            if not response_started:
                await _too_large(send_wrapper, request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            REQUEST_LATENCY.labels(scope["method"], template, str(status)).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=path,
                status=status,
                latency_ms=round(elapsed * 1000, 2),
                user_id=scope.get("state", {}).get("principal_id"),
            )


class WorkerLoad:
    """What this process's background work reads to stay out of sales' way: how many
    requests the worker has begun so far (a count that moves means requests are arriving)."""

    def __init__(self) -> None:
        self.begun = 0


WORKER_LOAD = WorkerLoad()


class LoadShedding:
    """Past `max_in_flight` requests this worker has accepted and not yet begun to answer,
    answer 503 with Retry-After at once: before authentication, storage or Redis, so an
    overloaded worker spends almost nothing on what it refuses. A request stops counting
    when its response starts, so an open event stream holds no slot (streams have their own
    caps). /health and /ready are never refused: they are how operators see the overload."""

    EXEMPT = frozenset({"/health", "/ready"})

    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_seconds: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after = str(retry_after_seconds).encode()
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await _overloaded(send, self.retry_after)
            return
        self.in_flight += 1
        WORKER_LOAD.begun += 1
        counted = True

        async def send_wrapper(message: Message) -> None:
            nonlocal counted
            if counted and message["type"] == "http.response.start":
                counted = False
                self.in_flight -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if counted:
                self.in_flight -= 1


def _policy(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes] | None:
    """The page policy for HTML, the API's for anything else; none if the route set one."""
    html = False
    for name, value in headers:
        if name == CSP:
            return None
        if name == b"content-type":
            html = value.startswith(b"text/html")
    return PAGE_CSP if html else API_CSP


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if SANE_REQUEST_ID.match(candidate):
                return candidate
    return os.urandom(16).hex()  # 128 random bits, like uuid4().hex but without a UUID object


def _accepts_gzip(scope: Scope) -> bool:
    return any(name == b"accept-encoding" and b"gzip" in value for name, value in scope["headers"])


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def wrapper() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge()
        return message

    return wrapper


async def _too_large(send: Send, request_id: str) -> None:
    await _send_error(send, 413, "PAYLOAD_TOO_LARGE", "The request body is too large", request_id)


async def _overloaded(send: Send, retry_after: bytes) -> None:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    message = "The server is busy; retry shortly"
    await _send_error(send, 503, "OVERLOADED", message, request_id, [(b"retry-after", retry_after)])


async def _send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    request_id: str | None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An error in the envelope, sent below the app (no route, no exception handler)."""
    payload = json.dumps(envelope_body(code, message, request_id)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
