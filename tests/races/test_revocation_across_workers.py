"""A role change made through one worker ends the old token in every worker at once: on the
embedded default (SQLite, the supervisor's shared fakeredis) and on PostgreSQL with Redis."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.races import account
from tests.support.server import Server

CONNECTIONS = 16


async def connections(stack: AsyncExitStack, base_url: str) -> list[httpx.AsyncClient]:
    """CONNECTIONS clients of one connection each, opened one after the other so that both
    workers accept some (a worker accepts every connection already waiting)."""
    clients = []
    for _ in range(CONNECTIONS):
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=base_url,
                timeout=30,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
        )
        assert (await client.get("/health")).status_code == 200
        clients.append(client)
        await asyncio.sleep(0.05)
    return clients


@pytest.fixture(
    params=[
        pytest.param("embedded", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=[pytest.mark.postgresql, pytest.mark.redis]),
        pytest.param(
            "postgresql-cluster", marks=[pytest.mark.postgresql, pytest.mark.redis_cluster]
        ),
    ]
)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Server, str]:
    """A 2-worker server (not started) and its database URL."""
    if request.param == "embedded":
        database_url = f"sqlite:///{tmp_path / 'ticketboss.db'}"
        return Server(database_url, workers=2), database_url
    database_url = request.getfixturevalue("postgresql_url")
    redis_url = request.getfixturevalue(
        "redis_cluster_url" if request.param == "postgresql-cluster" else "redis_url"
    )
    return Server(database_url, workers=2, redis_url=redis_url), database_url


async def test_a_demotion_reaches_every_worker_at_once(deployment: tuple[Server, str]) -> None:
    server, database_url = deployment
    with server:
        async with AsyncExitStack() as stack:
            clients = await connections(stack, server.base_url)
            boss = await account(clients[0], database_url, "admin")
            demoted = await account(clients[0], database_url, "admin")
            answers = await asyncio.gather(
                *(c.get("/api/v1/auth/me", headers=demoted.headers) for c in clients)
            )
            assert {r.status_code for r in answers} == {200}  # every worker knows the token

            r = await clients[-1].patch(
                f"/api/v1/users/{demoted.id}", json={"role": "user"}, headers=boss.headers
            )
            assert r.status_code == 200, r.text
            answers = await asyncio.gather(
                *(c.get("/api/v1/auth/me", headers=demoted.headers) for c in clients)
            )
            assert {r.status_code for r in answers} == {401}
            attempts = await asyncio.gather(
                *(
                    c.patch(
                        f"/api/v1/users/{demoted.id}",
                        json={"role": "admin"},
                        headers=demoted.headers,
                    )
                    for c in clients
                )
            )
            assert {r.status_code for r in attempts} == {401}
