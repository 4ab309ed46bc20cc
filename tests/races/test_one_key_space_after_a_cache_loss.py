"""One Idempotency-Key space per caller, in storage too (issue 30): after the cache is lost
(FLUSHDB), a key that made a booking is refused on an order, and the other way round, with the
same 422 as when the cache is intact, and nothing is sold under it a second time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from tests.support.accounts import Account
from tests.support.races import account, counts_and_drift, hot_event
from tests.support.server import Server
from tests.support.services import (
    REDIS_HOST,
    REDIS_PORT,
    REDIS_URL,
    database_of_its_own,
    port_open,
    service_missing,
)

BACKENDS = ("sqlite", "postgresql", "mongodb")

BOOKING = "/api/v1/bookings"
ORDER = "/api/v1/orders"


@pytest.fixture(
    scope="module",
    params=[pytest.param(b, marks=[getattr(pytest.mark, b), pytest.mark.redis]) for b in BACKENDS],
)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One server per backend, its cache the test Redis database (which FLUSHDB empties)."""
    if not port_open(REDIS_HOST, REDIS_PORT):
        service_missing(f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    with (
        database_of_its_own(request, request.param) as url,
        Server(url, workers=1, redis_url=REDIS_URL) as running,
    ):
        yield running


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


async def forget_every_key(server: Server) -> None:
    """The cache loss: every stored answer and claim of the fast path is gone."""
    cache = aioredis.from_url(server.env["REDIS_URL"])
    try:
        await cache.flushdb()
    finally:
        await cache.aclose()


def bodies(event_id: str) -> dict[str, dict[str, object]]:
    return {
        BOOKING: {"eventId": event_id, "tier": "GA", "quantity": 1},
        ORDER: {"eventId": event_id, "items": [{"tier": "GA", "quantity": 1}]},
    }


async def sold(server: Server, event_id: str) -> int:
    counts, drift = await counts_and_drift(server.env["DATABASE_URL"], event_id)
    assert drift == []
    return sum(c.pending + c.confirmed for c in counts)


@pytest.mark.parametrize(("first", "then"), [(BOOKING, ORDER), (ORDER, BOOKING)])
async def test_a_key_of_one_kind_is_refused_on_the_other_after_a_cache_loss(
    server: Server, http: httpx.AsyncClient, first: str, then: str
) -> None:
    database_url = server.env["DATABASE_URL"]
    organizer = await account(http, database_url, "organizer")
    buyer: Account = await account(http, database_url)
    tiers = [{"code": "GA", "name": "GA", "priceCents": 1000, "capacity": 10}]
    event_id = await hot_event(http, organizer, tiers)
    body = bodies(event_id)
    headers = buyer.headers | {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}

    made = await http.post(first, json=body[first], headers=headers)
    assert made.status_code == 201, made.text
    reused = await http.post(then, json=body[then], headers=headers)
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"

    await forget_every_key(server)
    reused = await http.post(then, json=body[then], headers=headers)
    assert reused.status_code == 422, reused.text
    assert reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await sold(server, event_id) == 1  # the second sale wrote nothing

    await forget_every_key(server)
    replayed = await http.post(first, json=body[first], headers=headers)
    assert replayed.status_code in (200, 201), replayed.text
    assert replayed.json()["data"]["id"] == made.json()["data"]["id"]
    assert await sold(server, event_id) == 1
