"""Fixtures only (helpers live in tests/support/): the backend matrix and app clients.

`database_url` runs a test once per backend, each marked (`pytest -m postgresql` selects one);
tests that exercise HTTP concerns rather than storage use `sqlite_api` and run once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core import clock
from core.storage import build_storage
from tests.support.api import Api, make_settings, running_api
from tests.support.services import (
    REDIS_CLUSTER_PORT,
    REDIS_CLUSTER_URL,
    REDIS_HOST,
    REDIS_PORT,
    REDIS_URL,
    MongoEcoServer,
    fresh_postgresql,
    mongo_url,
    port_open,
    service_missing,
)

BACKENDS = ("sqlite", "postgresql", "mongodb")


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    with fresh_postgresql() as url:
        yield url


@pytest.fixture(scope="session")
def mongo_base_uri() -> Iterator[str]:
    """The mongoeco wire server in a thread, or a real MongoDB from MONGODB_URI."""
    if uri := os.environ.get("MONGODB_URI"):
        yield uri
        return
    server = MongoEcoServer()
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def mongodb_url(mongo_base_uri: str) -> str:
    return mongo_url(mongo_base_uri, f"tb_test_{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"

    async def migrate() -> None:
        storage = build_storage(f"sqlite:///{path}")
        await storage.migrate()
        await storage.close()

    asyncio.run(migrate())
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A database of the test's own: a write lock an earlier test's app left behind (a
    connection of a task cancelled at its shutdown) cannot stall this one."""
    path = tmp_path / "ticketboss.db"
    for suffix in ("", "-wal", "-shm"):
        source = sqlite_template.with_name(sqlite_template.name + suffix)
        if source.exists():
            shutil.copyfile(source, path.with_name(path.name + suffix))
    return f"sqlite:///{path}"


@pytest.fixture(params=[pytest.param(b, marks=getattr(pytest.mark, b)) for b in BACKENDS])
def database_url(request: pytest.FixtureRequest) -> str:
    """The test runs once per backend (marked sqlite / postgresql / mongodb)."""
    match request.param:
        case "sqlite":
            url: str = request.getfixturevalue("sqlite_url")
        case "postgresql":
            url = request.getfixturevalue("postgresql_url")
        case _:
            url = request.getfixturevalue("mongodb_url")
    return url


@pytest.fixture
def redis_url() -> str:
    if not port_open(REDIS_HOST, REDIS_PORT):
        service_missing(f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    return REDIS_URL


@pytest.fixture
def redis_cluster_url() -> str:
    """The local 3-node Redis Cluster (.ci/services.sh starts it)."""
    if not port_open(REDIS_HOST, REDIS_CLUSTER_PORT):
        service_missing(f"the Redis Cluster on {REDIS_HOST}:{REDIS_CLUSTER_PORT}")
    return REDIS_CLUSTER_URL


REDIS_KINDS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", marks=pytest.mark.redis_cluster),
]


def real_redis(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(
        "redis_url" if request.param == "redis" else "redis_cluster_url"
    )
    return url


@pytest.fixture(params=REDIS_KINDS)
def shared_redis_url(request: pytest.FixtureRequest) -> str:
    """The test runs against one real Redis server and against a real Redis Cluster."""
    return real_redis(request)


@pytest.fixture(params=[pytest.param("fakeredis"), *REDIS_KINDS])
def cache_url(request: pytest.FixtureRequest) -> str | None:
    """The test runs against the in-process fakeredis, the real Redis and a Redis Cluster."""
    return None if request.param == "fakeredis" else real_redis(request)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """The app on each database backend with the in-process cache."""
    async with running_api(make_settings(database_url)) as running:
        yield running


@pytest.fixture
async def sqlite_api(sqlite_url: str) -> AsyncIterator[Api]:
    """The app once, on SQLite: for HTTP concerns that do not depend on the backend."""
    async with running_api(make_settings(sqlite_url)) as running:
        yield running


@pytest.fixture
def advance_clock() -> Iterator[Callable[[timedelta], None]]:
    """Move the app's clock (core/clock.py) forward instead of sleeping; reset afterwards."""
    yield clock.advance
    clock.reset()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist the Redis Cluster (one database, shared) is used by one worker only:
    its tests form one group (`--dist loadgroup`), so one worker's FLUSHDB never meets
    another's keys. First among the hooks: xdist names a test's group from its markers in
    its own hook."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if item.get_closest_marker("redis_cluster") or "redis_cluster_url" in fixtures:
            item.add_marker(pytest.mark.xdist_group("redis_cluster"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """The grouping above is read from node ids (xdist suffixes `@group`): should a pytest or
    xdist upgrade stop that, the run fails here instead of racing on the shared cluster."""
    if not session.config.getoption("loadgroup", default=False):
        return
    for item in session.items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            raise pytest.UsageError(f"pytest-xdist did not group {item.nodeid}: see pyproject")
