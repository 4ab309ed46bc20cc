"""The real services tests talk to: PostgreSQL and Redis on 127.0.0.1, MongoDB through mongoeco.

Locally a test that needs a missing service skips; with TICKETBOSS_REQUIRE_SERVICES=1 (set by
.ci/run) it fails instead, so a missing service never looks like a pass in CI.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = os.environ.get("TEST_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/9")
REQUIRE_SERVICES = os.environ.get("TICKETBOSS_REQUIRE_SERVICES") == "1"


def service_missing(what: str) -> None:
    """Skip locally, fail in CI."""
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


async def pg_admin(sql: str) -> None:
    """Run one statement as the superuser on the `postgres` database (create/drop databases)."""
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


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


def mongo_url(base: str, database: str) -> str:
    """`base` (a server URI, maybe naming a database) pointed at `database`."""
    head, _, query = base.partition("?")
    head = head.rstrip("/")
    if head.count("/") > 2:  # a database is named already: replace it
        head = head.rsplit("/", 1)[0]
    return f"{head}/{database}" + (f"?{query}" if query else "")
