"""The app factory and the lifespan that builds and closes shared resources.

Core never imports feature modules: `create_app` receives their routers and hooks
(see modules/api.py, the one place that assembles the product).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from core import openapi
from core.broadcast import Broadcast
from core.cache import Cache, Memo
from core.config import Settings, load_settings
from core.deps import AppContext, Context, client_ip
from core.errors import Forbidden, Unauthorized, install_error_handlers
from core.logging import configure_logging, get_logger
from core.metrics import render
from core.middleware import LoadShedding, RequestContextMiddleware
from core.outbox import Relay
from core.queue import WaitingRoom
from core.ratelimit import RateLimiter
from core.security import TokenService
from core.storage import build_storage
from core.streams import StreamHub

log = get_logger(__name__)
Hook = Callable[[AppContext], Coroutine[Any, Any, None]]
SNAPSHOT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Feature:
    """A module's contribution: routes (API ones under /api/v1), start-up work, background loops.

    Routes of the `core.routing.ApiRoute` class are rate limited; plain routes (the web
    front's pages and assets) are not: they do no work worth limiting, and a page load
    fetches many.
    """

    router: APIRouter
    api: bool = True
    on_startup: Sequence[Hook] = field(default_factory=tuple)
    background: Sequence[Hook] = field(default_factory=tuple)


async def open_context(settings: Settings, *, migrate: bool | None = None) -> AppContext:
    """Build storage and cache. The schema is migrated when `migrate` says so; by default
    for SQLite and MongoDB, whose migrations are safe to run from every process at start-up
    (PostgreSQL's are run once by `ticketboss migrate` or `serve`)."""
    storage = build_storage(
        settings.database_url,
        settings.database_pool_size,
        settings.reserve_batch_max,
        one_statement=settings.reserve_one_statement,
    )
    if migrate is None:
        migrate = settings.database_kind in ("sqlite", "mongodb")
    if migrate:
        await storage.migrate()
    else:
        await storage.ping()
    cache = Cache(settings.redis_url, settings.redis_timeout_seconds)
    broadcast = Broadcast(cache)
    return AppContext(
        settings=settings,
        storage=storage,
        cache=cache,
        tokens=TokenService(settings),
        limiter=RateLimiter(settings, cache),
        broadcast=broadcast,
        streams=StreamHub(broadcast, settings),
        outbox=Relay(storage),
        snapshots=Memo(SNAPSHOT_SECONDS),
        room=WaitingRoom(cache),
    )


async def close_context(ctx: AppContext) -> None:
    await ctx.storage.close()
    await ctx.limiter.close()
    await ctx.cache.close()


async def start_app(app: FastAPI, *, background: bool = True) -> list[asyncio.Task[None]]:
    """Open shared resources, run start-up hooks and (unless serverless) background loops."""
    settings: Settings = app.state.settings
    features: Sequence[Feature] = app.state.features
    ctx = await open_context(settings)
    app.state.ctx = ctx
    if settings.ticketboss_anonymous_partners:
        log.warning(
            "anonymous_partners_enabled", detail="/reservations accepts unauthenticated calls"
        )
    for feature in features:
        for hook in feature.on_startup:
            await hook(ctx)
    log.info("started", database=settings.database_kind, cache=ctx.cache.kind)
    if not background:
        return []
    loops = [loop(ctx) for f in features for loop in f.background]
    core_loops = [ctx.outbox.run_forever(), ctx.broadcast.run()]
    return [asyncio.create_task(c) for c in [*core_loops, *loops]]


async def stop_app(app: FastAPI, tasks: Sequence[asyncio.Task[None]] = ()) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if tasks:
        await app.state.ctx.outbox.release()
    await close_context(app.state.ctx)
    log.info("stopped")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    tasks = await start_app(app)
    try:
        yield
    finally:
        await stop_app(app, tasks)


def _operations_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    @router.get("/healthcheck", include_in_schema=False)
    @router.get("/healthcheck/", include_in_schema=False)  # the partner contract's path, both ways
    async def health() -> dict[str, str]:
        return {"status": "ok", "timestamp": datetime.now(UTC).isoformat()}

    @router.get(
        "/ready",
        responses={503: {"description": "A component is down: the same body, `unavailable`"}},
    )
    async def ready(ctx: Context) -> JSONResponse:
        components: dict[str, Any] = {}
        for name, kind, check in (
            ("database", ctx.storage.kind, ctx.storage.ping),
            ("cache", ctx.cache.kind, ctx.cache.ping),
        ):
            try:
                await asyncio.wait_for(check(), timeout=2.0)
                components[name] = {"status": "up", "backend": kind}
            except Exception as exc:  # any failure means "not ready", reported per component
                components[name] = {"status": "down", "backend": kind, "error": type(exc).__name__}
        ok = all(c["status"] == "up" for c in components.values())
        body = {"status": "ready" if ok else "unavailable", "components": components}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request, ctx: Context) -> Response:
        metrics_allowed(request, ctx.settings.metrics_token)
        return Response(
            render(ctx.settings.prometheus_multiproc_dir), media_type=CONTENT_TYPE_LATEST
        )

    return router


def metrics_allowed(request: Request, token: str | None) -> None:
    """/metrics tells the traffic, the errors and the sales: with METRICS_TOKEN set it wants
    that bearer token; without, it answers this machine alone (a local Prometheus, the bench)."""
    if token is not None:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("Send METRICS_TOKEN as `Authorization: Bearer <token>`")
        return
    try:
        loopback = ipaddress.ip_address(client_ip(request)).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise Forbidden("/metrics answers loopback only unless METRICS_TOKEN is set")


def create_app(settings: Settings | None = None, features: Sequence[Feature] = ()) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.json_logs)
    # No CDN docs: the web feature serves /docs and /redoc from the app's own assets.
    app = FastAPI(
        title="TicketBoss",
        version="1.0.0",
        description="Sell out hot events without overselling a single seat.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.features = features
    install_error_handlers(app)
    openapi.install(app)
    app.include_router(_operations_router())
    # Each feature's router goes straight into the app, in the features' order: routes are
    # tried one by one, and a router nested in another is matched again at every level.
    # (Rate limits are applied by the API's route class, core/routing.ApiRoute.)
    for feature in features:
        app.include_router(feature.router, prefix="/api/v1" if feature.api else "")
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", "Retry-After"],
        )
    # Inside the request context (request id, log, metrics), before everything else.
    app.add_middleware(
        LoadShedding,
        max_in_flight=settings.max_in_flight,
        retry_after_seconds=settings.overload_retry_after_seconds,
    )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
