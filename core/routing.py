"""The route class every router uses: one guarded JSON parser, AppErrors rendered by the
route, and the Idempotency-Key guard for routes declared with `core.idempotency.idempotent()`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from core.deps import AppContext, caller_scope, resolve_principal
from core.errors import AppError, Unauthorized, app_error_response
from core.idempotency import EXTENSION, IdempotentRequest, Mode, open_request
from core.jsonbody import is_json, parse_json


class ApiRoute(APIRoute):
    """Subclasses change `render_error` to answer in another contract's error format; the
    guard stores what `render_error` produced, so a replay is byte-for-byte the first answer.
    """

    def render_error(self, exc: AppError) -> Response:
        return app_error_response(exc)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        mode: Mode | None = (self.openapi_extra or {}).get(EXTENSION)
        parses_body = self.body_field is not None

        async def handle(request: Request) -> Response:
            try:
                if parses_body:
                    await parse_body_once(request)
                if mode is None:
                    return await inner(request)
                guard = await open_guard(request, required=mode == "required")
                request.scope.setdefault("state", {})["idempotency"] = guard
                return await guard.run(lambda: inner(request), self.render_error)
            except AppError as exc:
                return self.render_error(exc)

        return handle


async def parse_body_once(request: Request) -> None:
    """Parse a JSON body with the guarded parser before FastAPI reads it.

    FastAPI reads bodies through `Request.json()`, which parses once and keeps the result in
    `_json`; filling it here means no body ever reaches the standard library's recursive parser.
    """
    body = await request.body()
    if body and is_json(request.headers.get("content-type")):
        request._json = parse_json(body)


async def open_guard(request: Request, *, required: bool) -> IdempotentRequest:
    """The request's guard. A route that requires a key is for authenticated callers, whose
    keys are theirs: without a token it answers 401 before asking for the key."""
    ctx: AppContext = request.app.state.ctx
    if required and await resolve_principal(request, ctx) is None:
        raise Unauthorized()
    return await open_request(
        request,
        ctx.cache,
        await caller_scope(request, ctx),
        ctx.settings.idempotency_ttl_seconds,
        required=required,
    )


def current_guard(request: Request) -> IdempotentRequest | None:
    """The guard `ApiRoute` opened for this request (None when the route has none)."""
    guard: IdempotentRequest | None = request.scope.get("state", {}).get("idempotency")
    return guard
