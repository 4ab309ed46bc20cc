"""What the OpenAPI document says about failures and credentials, derived in one place from
each route (its method, path parameters, body, auth dependencies, Idempotency-Key, If-Match),
so that a new route is documented as truthfully as the old ones without anyone remembering to.

`ApiRoute` calls `error_responses` for every route; `install` adds the security schemes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from core.inputs import PATH_ID_PATTERN, TEXT_PATTERN

AUTH_ATTRIBUTE = "__ticketboss_auth__"
AuthMode = Literal["optional", "required"]
BEARER = "bearerAuth"
CLIENT_CREDENTIALS = "clientCredentials"
REQUIRED_SECURITY: list[dict[str, list[str]]] = [{BEARER: []}, {CLIENT_CREDENTIALS: []}]

DESCRIPTIONS = {
    400: "The request is malformed (unparseable JSON, a bad cursor, header or parameter)",
    401: "No bearer token where one is needed, or an invalid or expired one",
    403: "The caller's role or ownership does not allow this",
    404: "No such resource (or not visible to this caller)",
    409: "The resource's state does not allow this now, or the Idempotency-Key is in use",
    412: "If-Match names a version that is no longer current",
    413: "The request body is larger than MAX_BODY_BYTES",
    422: "The request does not validate: `errors` names each field",
    429: "Too many requests; retry after `Retry-After` seconds",
    503: "The database is busy, or the worker is overloaded; retry after `Retry-After` seconds",
}


class FieldError(BaseModel):
    field: str
    message: str


class ErrorEnvelope(BaseModel):
    """Every error of /api/v1 (and of every route for 413, answered before any route). Some codes add fields
    (e.g. `version` on 412, `availableQuantity` on a shortage)."""

    model_config = ConfigDict(extra="allow")

    success: Literal[False]
    message: str
    code: str = Field(description="Stable, UPPER_SNAKE: clients branch on it")
    errors: list[FieldError]
    requestId: str | None


def declare(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Statuses a route answers that its shape does not reveal (a login's 401, say)."""
    return error_responses(set(statuses), ErrorEnvelope, envelope_statuses=set())


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The `requestBody` of a route whose body is parsed by hand."""
    return {
        "required": True,
        "content": {"application/json": {"schema": model.model_json_schema()}},
    }


def authenticates[F: Callable[..., Any]](mode: AuthMode) -> Callable[[F], F]:
    """Mark a dependency as reading the bearer token: `required` (401 without one) or
    `optional` (401 only for a bad one). The marks decide 401/403 and `security` below."""

    def mark(function: F) -> F:
        setattr(function, AUTH_ATTRIBUTE, mode)
        return function

    return mark


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def auth_mode(dependant: Dependant) -> AuthMode | None:
    modes = {getattr(call, AUTH_ATTRIBUTE, None) for call in _calls(dependant)}
    if "required" in modes:
        return "required"
    return "optional" if "optional" in modes else None


def error_statuses(
    *,
    methods: set[str],
    dependant: Dependant,
    has_body: bool,
    idempotency: str | None,
) -> set[int]:
    """The error statuses a route can answer, from what it reads."""
    statuses = {422, 429, 503}
    writes = bool(methods & {"POST", "PUT", "PATCH", "DELETE"})
    headers = {p.alias.lower() for p in dependant.header_params}
    if has_body or idempotency or dependant.query_params or headers or writes:
        statuses.add(400)
    mode = auth_mode(dependant)
    if mode or idempotency == "required":
        statuses.add(401)
    if mode:
        statuses.add(403)
    if dependant.path_params or writes:
        statuses.add(404)
    if writes or idempotency:
        statuses.add(409)
    if "if-match" in headers:
        statuses.add(412)
    if writes:
        statuses.add(413)
    return statuses


def error_responses(
    statuses: set[int], model: type[BaseModel], envelope_statuses: set[int]
) -> dict[int | str, dict[str, Any]]:
    """`responses` entries: `model` for the route's own errors, the envelope for the statuses
    answered outside the route (`envelope_statuses`: the middleware's 413)."""
    return {
        status: {
            "model": ErrorEnvelope if status in envelope_statuses else model,
            "description": DESCRIPTIONS[status],
        }
        for status in sorted(statuses)
    }


def declare_text(document: dict[str, Any]) -> None:
    """Give every text input the pattern the server enforces on it (no control characters,
    core/inputs.py): query parameters, and request bodies followed through their `$ref`s.
    Strings that already say more (a pattern, an enum, a format) keep what they say."""
    components: dict[str, Any] = document.get("components", {}).get("schemas", {})
    followed: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name in components and name not in followed:
                    followed.add(name)
                    walk(components[name])
            elif node.get("type") == "string" and not node.keys() & TEXT_SAYS_MORE:
                node["pattern"] = TEXT_PATTERN
            for value in node.values():
                walk(value)

    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    walk(parameter.get("schema"))
                elif parameter.get("in") == "path":
                    schema = parameter.get("schema", {})
                    if schema.get("type") == "string" and not schema.keys() & TEXT_SAYS_MORE:
                        schema["pattern"] = PATH_ID_PATTERN
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walk(media.get("schema"))


TEXT_SAYS_MORE = frozenset({"pattern", "enum", "const", "format"})


def install(app: FastAPI) -> None:
    """Security schemes in the document; each operation's `security` comes from its route."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from /api/v1/auth/login or /auth/register",
                },
                CLIENT_CREDENTIALS: {
                    "type": "oauth2",
                    "description": "Partners: OAuth2 client credentials (RFC 6749 §4.4)",
                    "flows": {
                        "clientCredentials": {"tokenUrl": "/api/v1/auth/token", "scopes": {}}
                    },
                },
            }
            declare_text(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
