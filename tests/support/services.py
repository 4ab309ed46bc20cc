"""The real services tests talk to: PostgreSQL and Redis on 127.0.0.1, MongoDB through mongoeco.

Locally a test that needs a missing service skips; with TICKETBOSS_REQUIRE_SERVICES=1 (set by
.ci/run) it fails instead, so a missing service never looks like a pass in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _redis_url_of_this_worker(url: str) -> str:
    """Under pytest-xdist (`-n 2`), worker gwN uses database base+N, so that one worker's
    FLUSHDB never empties another's cache."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base, _, db = url.rpartition("/")
    if not worker.startswith("gw") or not db.isdigit():
        return url
    return f"{base}/{int(db) + int(worker[2:])}"


REDIS_URL = _redis_url_of_this_worker(
    os.environ.get("TEST_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/9")
)
# A Redis Cluster has one database only: tests that share it use keys of their own.
REDIS_CLUSTER_PORT = 7001
REDIS_CLUSTER_URL = os.environ.get(
    "TEST_REDIS_CLUSTER_URL", f"redis+cluster://{REDIS_HOST}:{REDIS_CLUSTER_PORT}"
)
REQUIRE_SERVICES = os.environ.get("TICKETBOSS_REQUIRE_SERVICES") == "1"
# TEST_POSTGRESQL_VIA=pgbouncer: the tests reach their PostgreSQL databases through the local
# PgBouncer in transaction mode (.ci/services.sh starts it; .ci/run runs the PostgreSQL
# contract tests and a booking race that way).
PGBOUNCER_PORT = 6432
VIA_PGBOUNCER = os.environ.get("TEST_POSTGRESQL_VIA") == "pgbouncer"


def service_missing(what: str) -> None:
    """Skip locally, fail in CI."""
    message = f"{what} is not reachable; start it with .ci/services.sh"
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


@contextlib.contextmanager
def fresh_postgresql() -> Iterator[str]:
    """A new, migrated PostgreSQL database, dropped afterwards."""
    if not port_open(PG_HOST, PG_PORT):
        service_missing(f"PostgreSQL on {PG_HOST}:{PG_PORT}")
    if VIA_PGBOUNCER and not port_open(PG_HOST, PGBOUNCER_PORT):
        service_missing(f"PgBouncer on {PG_HOST}:{PGBOUNCER_PORT}")
    from core.storage import build_storage

    name = f"tb_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    if VIA_PGBOUNCER:
        url = f"postgresql://postgres@{PG_HOST}:{PGBOUNCER_PORT}/{name}?pooler=pgbouncer"
    else:
        url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"

    async def migrate() -> None:
        storage = build_storage(url)
        await storage.migrate()
        await storage.close()

    try:
        asyncio.run(migrate())
        yield url
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class MongoEcoServer:
    """mongoeco's wire server in a process of its own, reachable by PyMongo.

    Not a thread of the test process: there it would share one interpreter lock with the
    test's own clients, so on a loaded machine the observer would slow the database it
    observes (seen: a 64-client race timing out after 60 s)."""

    SCRIPT = (
        "import asyncio, sys\n"
        "from mongoeco.wire import AsyncMongoEcoProxyServer\n"
        "async def main():\n"
        "    async with AsyncMongoEcoProxyServer() as server:\n"
        "        print(server.address.uri, flush=True)\n"
        "        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)\n"
        "asyncio.run(main())\n"
    )

    def __init__(self) -> None:
        self.uri = ""
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start the server; it stops by itself when this process closes its stdin."""
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.uri = self.proc.stdout.readline().strip()
        if not self.uri.startswith("mongodb://"):
            self.stop()
            raise RuntimeError("mongoeco did not start")
        return self.uri

    def stop(self) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def mongo_url(base: str, database: str) -> str:
    """`base` (a server URI, maybe naming a database) pointed at `database`."""
    head, _, query = base.partition("?")
    head = head.rstrip("/")
    if head.count("/") > 2:  # a database is named already: replace it
        head = head.rsplit("/", 1)[0]
    return f"{head}/{database}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def database_of_its_own(request: pytest.FixtureRequest, backend: str) -> Iterator[str]:
    """A database no other test shares, for a server that outlives one test (module-scoped):
    its background loops (sweeper, admitter, mail) then never contend with the writes of the
    tests that run beside it in the same pytest process."""
    if backend == "sqlite":
        folder = request.getfixturevalue("tmp_path_factory").mktemp("own")
        yield f"sqlite:///{folder / 'ticketboss.db'}"
    elif backend == "postgresql":
        with fresh_postgresql() as url:
            yield url
    else:
        base = request.getfixturevalue("mongo_base_uri")
        yield mongo_url(base, f"tb_own_{uuid.uuid4().hex[:10]}")
