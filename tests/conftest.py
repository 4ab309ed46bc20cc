"""Shared fixtures: a backend matrix (sqlite, postgresql, mongodb via mongoeco) and app clients.

PostgreSQL and Redis are real servers on 127.0.0.1. Locally a test that needs one skips when
it is down; with TICKETBOSS_REQUIRE_SERVICES=1 (set by .ci/run) it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from core.config import Settings
from core.deps import AppContext
from modules.api import create_api

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
REQUIRE_SERVICES = os.environ.get("TICKETBOSS_REQUIRE_SERVICES") == "1"
BACKENDS = ("sqlite", "postgresql", "mongodb")


def service_missing(what: str) -> None:
    """Skip locally, fail in CI: a missing service must never look like a pass there."""
    message = f"{what} is not reachable; start it with ../shared/services.sh"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- PostgreSQL: one fresh database per test session, dropped afterwards ---------------------


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    if not port_open(PG_HOST, PG_PORT):
        service_missing("PostgreSQL on 127.0.0.1:5432")
    import asyncpg

    name = f"tb_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", database="postgres"
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    from core.storage import build_storage

    async def migrate() -> None:
        storage = build_storage(url)
        await storage.migrate()
        await storage.close()

    asyncio.run(migrate())
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- MongoDB: the mongoeco wire server in a background thread (or MONGODB_URI) -------------


class MongoEcoServer:
    """mongoeco's wire server on its own event loop, reachable by PyMongo (and subprocesses)."""

    def __init__(self) -> None:
        self.uri = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="mongoeco")

    def _run(self) -> None:
        from mongoeco.wire import AsyncMongoEcoProxyServer

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with AsyncMongoEcoProxyServer() as server:
                self.uri = server.address.uri
                self._ready.set()
                await self._stop.wait()

        asyncio.run(main())

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("mongoeco did not start")
        return self.uri

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="session")
def mongo_base_uri() -> Iterator[str]:
    if uri := os.environ.get("MONGODB_URI"):
        yield uri
        return
    server = MongoEcoServer()
    yield server.start()
    server.stop()


def mongo_url(base: str, database: str) -> str:
    head, _, query = base.partition("?")
    head = head.rstrip("/")
    if head.count("/") > 2:  # a database is named already: replace it
        head = head.rsplit("/", 1)[0]
    return f"{head}/{database}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def mongodb_url(mongo_base_uri: str) -> str:
    return mongo_url(mongo_base_uri, f"tb_test_{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'ticketboss.db'}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per backend."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def redis_url() -> str:
    host, port = "127.0.0.1", 6379
    if not port_open(host, port):
        service_missing("Redis on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(params=("fakeredis", "redis"))
def cache_url(request: pytest.FixtureRequest) -> str | None:
    """Each test using this runs against the in-process fakeredis and the real Redis."""
    if request.param == "fakeredis":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


# --- The app, driven in-process ---------------------------------------------------------------


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": None,
        "rate_limit_enabled": False,
        "log_format": "json",
        "log_level": "WARNING",
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Api:
    """An httpx client on the real app plus the app's shared context (storage, cache)."""

    client: httpx.AsyncClient
    ctx: AppContext

    async def user(self, role: str = "user", email: str | None = None) -> dict[str, Any]:
        """Register an account (promoted through storage when not a plain user) and log in."""
        email = email or f"{role}-{uuid.uuid4().hex[:12]}@example.com"
        password = "correct horse battery staple"
        r = await self.client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": password, "name": role.title()},
        )
        assert r.status_code == 201, r.text
        data = r.json()["data"]
        if role != "user":
            from core.storage.records import utcnow

            await self.ctx.storage.users.set_role(data["user"]["id"], role, utcnow())  # type: ignore[arg-type]
            r = await self.client.post(
                "/api/v1/auth/login", json={"email": email, "password": password}
            )
            data |= r.json()["data"]
        return {
            "id": data["user"]["id"],
            "email": email,
            "password": password,
            "headers": {"Authorization": f"Bearer {data['accessToken']}"},
            "refresh": data["refreshToken"],
        }

    async def partner(self, admin: dict[str, Any] | None = None) -> dict[str, Any]:
        admin = admin or await self.user("admin")
        r = await self.client.post(
            "/api/v1/partners", json={"name": f"p-{uuid.uuid4().hex[:6]}"}, headers=admin["headers"]
        )
        assert r.status_code == 201, r.text
        creds = r.json()["data"]
        r = await self.client.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["clientId"],
                "client_secret": creds["clientSecret"],
            },
        )
        assert r.status_code == 200, r.text
        return {**creds, "headers": {"Authorization": f"Bearer {r.json()['access_token']}"}}

    async def event(
        self, organizer: dict[str, Any], *, publish: bool = True, **fields: Any
    ) -> dict[str, Any]:
        from datetime import UTC, datetime, timedelta

        body = {
            "name": "Test Concert",
            "venue": "Test Hall",
            "startsAt": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "tiers": [
                {"code": "GA", "name": "General Admission", "priceCents": 2500, "capacity": 100}
            ],
        } | fields
        r = await self.client.post("/api/v1/events", json=body, headers=organizer["headers"])
        assert r.status_code == 201, r.text
        event: dict[str, Any] = r.json()["data"]
        if publish:
            r = await self.client.post(
                f"/api/v1/events/{event['id']}/publish", headers=organizer["headers"]
            )
            assert r.status_code == 200, r.text
            event = r.json()["data"]
        return event

    async def book(
        self,
        who: dict[str, Any],
        event_id: str,
        quantity: int = 1,
        tier: str = "GA",
        key: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        headers = who["headers"] | {"Idempotency-Key": key or uuid.uuid4().hex}
        body = {"eventId": event_id, "tier": tier, "quantity": quantity} | extra
        return await self.client.post("/api/v1/bookings", json=body, headers=headers)


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_api(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, app.state.ctx)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """The app on each database backend with the in-process cache."""
    async with running_api(make_settings(database_url)) as running:
        yield running


@pytest.fixture
async def sqlite_api(sqlite_url: str) -> AsyncIterator[Api]:
    async with running_api(make_settings(sqlite_url)) as running:
        yield running
