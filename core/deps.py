"""FastAPI dependencies every module shares: the app context, the caller, roles, rate limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from core.broadcast import Broadcast
from core.cache import Cache, Memo
from core.config import Settings
from core.errors import AppError, Forbidden, Unauthorized
from core.openapi import authenticates
from core.outbox import Relay
from core.queue import WaitingRoom
from core.ratelimit import RateLimiter
from core.revocation import TokenVersions
from core.security import Principal, TokenService
from core.storage.port import Storage
from core.storage.records import Role
from core.streams import StreamHub


@dataclass(slots=True)
class AppContext:
    """Everything built once per process by the lifespan and shared by requests."""

    settings: Settings
    storage: Storage
    cache: Cache
    tokens: TokenService
    limiter: RateLimiter
    broadcast: Broadcast
    """Notices to every process that a topic changed (live availability)."""
    streams: StreamHub
    """This process's live streams: one computation per change, limits per client."""
    outbox: Relay
    """Hands the change log to its consumers (webhooks, live availability)."""
    snapshots: Memo[Any]
    """Per process, a second old at most: records the hot path reads for their rules only
    (an event's status, start and limits); never the source of seats."""
    room: WaitingRoom
    """The events' waiting rooms (their state lives in the cache)."""


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, a costly hand-off for work this small.


def app_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_context(request: Request) -> AppContext:
    return app_context(request)


Context = Annotated[AppContext, Depends(get_context)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the access token as `Authorization: Bearer <token>`")
    return token.strip()


def claimed_principal(request: Request, ctx: AppContext) -> Principal | None:
    """The caller the bearer token names (its signature and expiry verified, its version not
    yet checked), or None when no token was sent; decoded once per request."""
    state = request.scope.setdefault("state", {})
    if "claimed_principal" not in state:
        token = _bearer(request)
        state["claimed_principal"] = ctx.tokens.principal(token) if token else None
    claimed: Principal | None = state["claimed_principal"]
    return claimed


async def resolve_principal(request: Request, ctx: AppContext) -> Principal | None:
    """The verified caller, or None when no token was sent (decoded and checked against its
    account's token version once per request)."""
    state = request.scope.setdefault("state", {})
    if "principal" in state:
        cached: Principal | None = state["principal"]
        return cached
    principal = claimed_principal(request, ctx)
    if principal is not None:
        await TokenVersions(ctx.cache, ctx.storage).check(principal)
    state["principal"] = principal
    state["principal_id"] = principal.id if principal else None
    return principal


# The dependencies below take the request alone (the context is on the app): every sub-
# dependency would cost FastAPI's solver another round on each request of every route.


@authenticates("optional")
async def optional_principal(request: Request) -> Principal | None:
    return await resolve_principal(request, app_context(request))


@authenticates("required")
async def current_principal(request: Request) -> Principal:
    principal = await resolve_principal(request, app_context(request))
    if principal is None:
        raise Unauthorized()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting only callers whose role is one of `roles` (403 otherwise)."""

    @authenticates("required")
    async def check(request: Request) -> Principal:
        principal = await current_principal(request)
        if principal.role not in roles:
            raise Forbidden()
        return principal

    return check


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def rate_limit(request: Request) -> None:
    """Per caller when authenticated, per IP otherwise; applied to every API route."""
    ctx = app_context(request)
    try:
        principal = await resolve_principal(request, ctx)
    except AppError:
        principal = None  # the route's own auth dependency answers 401
    if principal is not None:
        await ctx.limiter.hit(ctx.limiter.authenticated, "principal", principal.id)
    else:
        await ctx.limiter.hit(ctx.limiter.anonymous, "ip", client_ip(request))


def caller_scope(request: Request, ctx: AppContext) -> str:
    """Whose Idempotency-Keys these are: the caller the token names, else the client's IP.
    (The token's version is checked alongside the key's claim: see core/routing.py.)"""
    principal = claimed_principal(request, ctx)
    return principal.id if principal else f"ip:{client_ip(request)}"
