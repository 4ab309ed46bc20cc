"""The route class every router uses: one guarded JSON parser, AppErrors rendered by the
route, the Idempotency-Key guard for routes declared with `core.idempotency.idempotent()`, and
the route's error responses and security in the OpenAPI document (see core/openapi.py).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from pydantic import BaseModel

from core import openapi
from core.deps import AppContext, caller_scope, claimed_principal, resolve_principal
from core.errors import (
    AppError,
    NotFound,
    Unauthorized,
    ValidationFailed,
    app_error_response,
    storage_error,
    validation_error,
)
from core.idempotency import EXTENSION, IdempotentRequest, Mode, open_request
from core.inputs import CONTROL_MESSAGE, has_control
from core.jsonbody import is_json, parse_json
from core.storage.errors import StorageBusy, StorageUnavailable


class ApiRoute(APIRoute):
    """Subclasses change `render_error` to answer in another contract's error format; the
    guard stores what `render_error` produced, so a replay is byte-for-byte the first answer.
    `error_model` is that format, for the OpenAPI document.
    """

    error_model: type[BaseModel] = openapi.ErrorEnvelope

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._declare_errors()

    def _declare_errors(self) -> None:
        """Add every error status this route can answer (explicit `responses` win), and its
        security requirement, to what FastAPI documents."""
        extra = self.openapi_extra or {}
        statuses = openapi.error_statuses(
            methods=set(self.methods or ()),
            dependant=self.dependant,
            has_body=self.body_field is not None or "requestBody" in extra,
            idempotency=extra.get(EXTENSION),
        )
        declared = openapi.error_responses(statuses, self.error_model, envelope_statuses={413})
        for status, response in declared.items():
            if status in self.responses or str(status) in self.responses:
                continue
            self.responses[status] = response
            self.response_fields[status] = create_model_field(
                name=f"Response_{status}_{self.unique_id}",
                type_=response["model"],
                mode="serialization",
            )
        mode = openapi.auth_mode(self.dependant)
        if mode is not None and "security" not in extra:
            security = list(openapi.REQUIRED_SECURITY)
            self.openapi_extra = extra | {
                "security": security + ([{}] if mode == "optional" else [])
            }

    def render_error(self, exc: AppError) -> Response:
        return app_error_response(exc)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        mode: Mode | None = (self.openapi_extra or {}).get(EXTENSION)
        parses_body = self.body_field is not None

        async def handle(request: Request) -> Response:
            try:
                check_text(request)
                if parses_body:
                    await parse_body_once(request)
                if mode is None:
                    return await inner(request)
                guard = await open_guard(request, required=mode == "required")
                request.scope.setdefault("state", {})["idempotency"] = guard
                # The token's version check and the key's claim travel to Redis together.
                checked = resolve_principal(request, request.app.state.ctx)
                return await guard.run(lambda: inner(request), self.render_error, checked)
            except AppError as exc:
                return self.render_error(exc)
            except RequestValidationError as exc:
                return self.render_error(validation_error(exc))
            except (StorageBusy, StorageUnavailable) as exc:
                return self.render_error(storage_error(exc))

        return handle


def check_text(request: Request) -> None:
    """Path ids and query values with control characters: no such resource (404) / 422.

    The same rule as every body field (core/inputs.py), so PostgreSQL never sees a NUL.
    """
    if any(has_control(str(value)) for value in request.path_params.values()):
        raise NotFound()
    bad = [name for name, value in request.query_params.multi_items() if has_control(value)]
    bad += [name for name in request.query_params if has_control(name)]
    if bad:
        raise ValidationFailed(errors=[{"field": name, "message": CONTROL_MESSAGE} for name in bad])


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
    if required and claimed_principal(request, ctx) is None:
        raise Unauthorized()
    return await open_request(
        request,
        ctx.cache,
        caller_scope(request, ctx),
        ctx.settings.idempotency_ttl_seconds,
        required=required,
    )


def with_and_without_slash(
    router: APIRouter, method: str, path: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `path` and `path/` (the latter left out of the OpenAPI document).

    For the well-known contracts: their clients call `/reservations/` as often as
    `/reservations`, and many do not repeat a POST after Starlette's 307 redirect.
    """

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, endpoint, methods=[method], **options)
        router.add_api_route(
            f"{path}/", endpoint, methods=[method], include_in_schema=False, **options
        )
        return endpoint

    return register


async def route_guard(request: Request) -> IdempotentRequest:
    """The guard `ApiRoute` opened for this request; for routes declared `idempotent()`."""
    guard: IdempotentRequest | None = request.scope.get("state", {}).get("idempotency")
    assert guard is not None, "the route is not declared idempotent"
    return guard


Guard = Annotated[IdempotentRequest, Depends(route_guard)]
"""The request's Idempotency-Key guard (its key and the request's fingerprint)."""
