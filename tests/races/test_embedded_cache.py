"""The embedded default (SQLite, no REDIS_URL) with two workers shares one cache: every read
from every worker is fresh after a change made through another, an Idempotency-Key is claimed
once across workers, and a rate limit counts every worker's hits.

Each client below holds one keep-alive connection, opened one after the other; the workers
accept connections from one listening socket, so CONNECTIONS connections reach both workers
(but with odds of about 2^-15)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import httpx
import pytest

from tests.support.accounts import Account
from tests.support.races import account, hot_event
from tests.support.server import Server

pytestmark = pytest.mark.sqlite
CONNECTIONS = 16
LOGIN_LIMIT = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'ticketboss.db'}"
    with Server(
        database_url,
        workers=2,
        TICKETBOSS_ANONYMOUS_PARTNERS="true",
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_ANONYMOUS="100000/minute",
        RATE_LIMIT_AUTHENTICATED="100000/minute",
        RATE_LIMIT_LOGIN_IP="100000/minute",
        RATE_LIMIT_LOGIN_ACCOUNT=f"{LOGIN_LIMIT}/minute",
    ) as running:
        yield running


@pytest.fixture
async def clients(server: Server) -> AsyncIterator[list[httpx.AsyncClient]]:
    """CONNECTIONS clients of one connection each, opened (and kept) before the test."""
    async with AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.base_url,
                    timeout=30,
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                )
            )
            for _ in range(CONNECTIONS)
        ]
        for client in opened:  # one at a time: a worker accepts every connection waiting
            assert (await client.get("/health")).status_code == 200
            await asyncio.sleep(0.05)
        yield opened


async def everywhere(clients: list[httpx.AsyncClient], path: str) -> list[httpx.Response]:
    return await asyncio.gather(*(c.get(path) for c in clients))


async def available(clients: list[httpx.AsyncClient], event_id: str) -> set[int]:
    answers = await everywhere(clients, f"/api/v1/events/{event_id}/availability")
    assert all(r.status_code == 200 for r in answers)
    return {r.json()["data"]["available"] for r in answers}


async def test_reads_on_every_worker_are_fresh(
    server: Server, clients: list[httpx.AsyncClient]
) -> None:
    http = clients[0]
    organizer = await account(http, server.env["DATABASE_URL"], "organizer")
    buyer = await account(http, server.env["DATABASE_URL"])
    tiers = [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 5}]
    event_id = await hot_event(http, organizer, tiers)
    assert await available(clients, event_id) == {5}  # every worker has cached it now

    booked = []
    for i, client in enumerate(clients[:4]):
        r = await client.post(
            "/api/v1/bookings",
            json={"eventId": event_id, "tier": "GA", "quantity": 1},
            headers=buyer.headers | {"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        booked.append(r.json()["data"]["id"])
        assert await available(clients, event_id) == {5 - i - 1}
    for i, booking_id in enumerate(booked):
        r = await clients[-1 - i].patch(
            f"/api/v1/bookings/{booking_id}/cancel", headers=buyer.headers
        )
        assert r.status_code == 200, r.text
        assert await available(clients, event_id) == {1 + i + 1}

    async def seats_left() -> set[int]:
        answers = await everywhere(clients, "/reservations")
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        return {r.json()["availableSeats"] for r in answers}

    before = (await seats_left()).pop()
    reservations = []
    for i, client in enumerate(clients[:3]):
        r = await client.post("/reservations", json={"partnerId": "abc-corp", "seats": 2})
        assert r.status_code == 201, r.text
        reservations.append(r.json()["reservationId"])
        assert await seats_left() == {before - 2 * (i + 1)}
    for i, reservation_id in enumerate(reservations):
        r = await clients[-1 - i].delete(f"/reservations/{reservation_id}")
        assert r.status_code == 204, r.text
        assert await seats_left() == {before - 6 + 2 * (i + 1)}


async def test_one_booking_for_one_key_across_workers(
    server: Server, clients: list[httpx.AsyncClient]
) -> None:
    """50 concurrent requests with one key: one booking; the others wait their turn (409
    IDEMPOTENCY_REQUEST_IN_PROGRESS) or replay it. (The storage's unique key is the backstop
    that keeps this true even with a cache per worker; the shared claim keeps it cheap.)"""
    http = clients[0]
    organizer = await account(http, server.env["DATABASE_URL"], "organizer")
    buyer: Account = await account(http, server.env["DATABASE_URL"])
    event_id = await hot_event(
        http, organizer, [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 100}]
    )
    headers = buyer.headers | {"Idempotency-Key": uuid.uuid4().hex}
    body = {"eventId": event_id, "tier": "GA", "quantity": 1}
    answers = await asyncio.gather(
        *(
            clients[i % CONNECTIONS].post("/api/v1/bookings", json=body, headers=headers)
            for i in range(50)
        )
    )
    created = [r for r in answers if r.status_code == 201]
    in_progress = [r for r in answers if r.status_code == 409]
    assert len(created) + len(in_progress) == 50, [r.text for r in answers]
    assert {r.json()["code"] for r in in_progress} <= {"IDEMPOTENCY_REQUEST_IN_PROGRESS"}
    assert len({r.json()["data"]["id"] for r in created}) == 1
    mine = (await http.get("/api/v1/bookings", headers=buyer.headers)).json()["data"]
    assert len(mine) == 1
    assert await available(clients, event_id) == {99}


async def test_a_rate_limit_counts_every_workers_hits(
    server: Server, clients: list[httpx.AsyncClient]
) -> None:
    http = clients[0]
    buyer: Account = await account(http, server.env["DATABASE_URL"])
    wrong = {"email": buyer.email, "password": "not the password at all"}
    # One after another, through every connection in turn (so through both workers): failed
    # logins are counted once they have failed, so concurrent ones could all pass the check.
    answers = [await c.post("/api/v1/auth/login", json=wrong) for c in clients * 2]
    refused = sum(r.status_code == 401 for r in answers)
    assert refused == LOGIN_LIMIT  # one window for the account, whichever worker answers
    assert sum(r.status_code == 429 for r in answers) == 2 * CONNECTIONS - refused
