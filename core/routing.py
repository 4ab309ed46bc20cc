"""The route class every API router uses: one guarded JSON parser, the rate limit, AppErrors
rendered by the route, the Idempotency-Key guard for routes declared with
`core.idempotency.idempotent()`, endpoints run without FastAPI's per-request dependency solver
where they can be (`DirectCall`), and the route's error responses and security in the OpenAPI
document (see core/openapi.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, get_type_hints

from fastapi import APIRouter, Depends, Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from core import openapi
from core.deps import (
    app_context,
    caller_scope,
    claimed_principal,
    rate_limit,
    resolve_principal,
)
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
        solved = super().get_route_handler()
        direct = DirectCall.of(self.dependant, embedded_body=self._embed_body_fields)
        mode: Mode | None = (self.openapi_extra or {}).get(EXTENSION)
        parses_body = self.body_field is not None

        async def inner(request: Request) -> Response:
            await rate_limit(request)
            if direct is not None and not request.app.dependency_overrides:
                return await direct(request)
            return await solved(request)

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
                checked = resolve_principal(request, app_context(request))
                return await guard.run(lambda: inner(request), self.render_error, checked)
            except AppError as exc:
                return self.render_error(exc)
            except RequestValidationError as exc:
                return self.render_error(validation_error(exc))
            except (StorageBusy, StorageUnavailable) as exc:
                return self.render_error(storage_error(exc))

        return handle


RequestDependency = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class DirectCall:
    """An endpoint run without FastAPI's dependency solver, which walks the graph and builds
    its bookkeeping on every request, for every dependency (taking it out, with the routers no
    longer nested, measured ×1.05–1.20 bookings/s: see the README's benchmark).

    Only for the shape most routes here have: each dependency takes the request alone, the
    endpoint returns a Response, and its body (if any) is one JSON model. Then this does what
    the solver would: the dependencies in the same order (each one once), then the path,
    query, header and cookie parameters and the body validated by FastAPI's own functions, so
    values and errors are the same. Anything else (nested dependencies, forms, background
    tasks) goes through FastAPI. Routers are included without dependencies of their own
    (core/app.py); those would not be seen here.
    """

    endpoint: Callable[..., Awaitable[Response]]
    dependencies: tuple[tuple[str | None, RequestDependency], ...]
    inputs: Dependant  # the endpoint's: its path, query, header and cookie parameters
    body: Any  # the body parameter's ModelField, or None
    request_param: str | None

    @classmethod
    def of(cls, dependant: Dependant, *, embedded_body: bool) -> DirectCall | None:
        call = dependant.call
        if call is None or not inspect.iscoroutinefunction(call) or not _returns_response(call):
            return None
        if _has_special_params(dependant) or embedded_body or len(dependant.body_params) > 1:
            return None
        body = dependant.body_params[0] if dependant.body_params else None
        if body is not None and isinstance(body.field_info, params.Form):
            return None
        dependencies: list[tuple[str | None, RequestDependency]] = []
        for sub in dependant.dependencies:
            if not _takes_request_only(sub):
                return None
            dependencies.append((sub.name, sub.call))  # type: ignore[arg-type]  # checked above
        return cls(call, tuple(dependencies), dependant, body, dependant.request_param_name)

    async def __call__(self, request: Request) -> Response:
        values: dict[str, Any] = {}
        solved: dict[RequestDependency, Any] = {}
        for name, dependency in self.dependencies:
            if dependency not in solved:
                solved[dependency] = await dependency(request)
            if name is not None:
                values[name] = solved[dependency]
        errors: list[Any] = []
        for fields, received in (
            (self.inputs.path_params, request.path_params),
            (self.inputs.query_params, request.query_params),
            (self.inputs.header_params, request.headers),
            (self.inputs.cookie_params, request.cookies),
        ):
            if fields:
                found, wrong = request_params_to_args(fields, received)
                values.update(found)
                errors += wrong
        body: Any = PydanticUndefined
        if self.body is not None:
            body = await _received_body(request)
            found, wrong = await request_body_to_args([self.body], body, embed_body_fields=False)
            values.update(found)
            errors += wrong
        if errors:
            raise RequestValidationError(errors, body=None if body is PydanticUndefined else body)
        if self.request_param is not None:
            values[self.request_param] = request
        return await self.endpoint(**values)


def _returns_response(call: Callable[..., Any]) -> bool:
    try:
        returned = get_type_hints(call).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


def _has_special_params(dependant: Dependant) -> bool:
    """Whether it takes the websocket, connection, response, background tasks or scopes."""
    return bool(
        dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.own_oauth_scopes
    )


def _takes_request_only(dependant: Dependant) -> bool:
    return (
        inspect.iscoroutinefunction(dependant.call)
        and dependant.request_param_name is not None
        and dependant.use_cache
        and not dependant.dependencies
        and not _has_special_params(dependant)
        and not (
            dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
        )
    )


async def _received_body(request: Request) -> Any:
    """The body as FastAPI hands it to validation: parsed when its type is JSON, the raw
    bytes otherwise, undefined when empty."""
    raw = await request.body()
    if not raw:
        return PydanticUndefined
    if is_json(request.headers.get("content-type")):
        return await request.json()  # already parsed by `parse_body_once`
    return raw


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
    ctx = app_context(request)
    if required and claimed_principal(request, ctx) is None:
        raise Unauthorized()
    return await open_request(
        request,
        ctx.cache,
        caller_scope(request, ctx),
        ctx.settings.idempotency_ttl_seconds,
        ctx.settings.idempotency_lease_seconds,
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
