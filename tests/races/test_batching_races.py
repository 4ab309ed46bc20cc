"""Group commit's own failure modes, raced through the real server on a real database.

Bookings of one tier that reach storage in the same event-loop turn share one atomic step
(core/storage/batching.py). These tests attack what only a batch can get wrong: a batch that
does not fit, a batch whose connection dies, and callers that leave while their batch waits.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

import httpx
import pytest

from tests.support.accounts import Account
from tests.support.races import account, counts_and_drift, hot_event
from tests.support.server import Server
from tests.support.services import pg_admin


def client(server: Server, connections: int, timeout: float = 60) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=timeout)


async def batch_metric(http: httpx.AsyncClient) -> tuple[float, float]:
    """(statements, bookings) of this worker's batch-size histogram, from /metrics."""
    text = (await http.get("/metrics")).text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("ticketboss_reserve_batch_size_")
    }
    return (
        values.get("ticketboss_reserve_batch_size_count", 0.0),
        values.get("ticketboss_reserve_batch_size_sum", 0.0),
    )


def book(event_id: str, buyer: Account, key: str, tier: str = "GA") -> tuple[dict, dict]:
    body = {"eventId": event_id, "tier": tier, "quantity": 1}
    return body, buyer.headers | {"Idempotency-Key": key}


async def a_rush(
    http: httpx.AsyncClient, database_url: str, *, seats: int, attempts: int
) -> tuple[str, dict[str, tuple[dict, dict]]]:
    """A one-tier event of `seats` and `attempts` bookings of one seat by 8 buyers, each
    under its own Idempotency-Key (the key maps to its body and headers)."""
    organizer = await account(http, database_url, "organizer")
    buyers = await asyncio.gather(*(account(http, database_url) for _ in range(8)))
    tier = {"code": "GA", "name": "GA", "priceCents": 100, "capacity": seats}
    event_id = await hot_event(http, organizer, [tier])
    keys = [uuid.uuid4().hex for _ in range(attempts)]
    return event_id, {key: book(event_id, buyers[i % 8], key) for i, key in enumerate(keys)}


async def settle(http: httpx.AsyncClient, attempts: dict[str, tuple[dict, dict]]) -> dict[str, str]:
    """Re-send every attempt with its own Idempotency-Key until it gets a final answer; the
    booking id each key ended with (keys refused for want of seats are left out)."""
    booked: dict[str, str] = {}
    for key, (body, headers) in attempts.items():
        for _ in range(50):
            try:
                r = await http.post("/api/v1/bookings", json=body, headers=headers)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if r.status_code == 201:
                booked[key] = r.json()["data"]["id"]
                break
            if r.status_code == 409 and r.json()["code"] == "INSUFFICIENT_TICKETS":
                break
            assert r.status_code in (409, 503), r.text  # in progress, or busy: again
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"key {key} never settled")
    return booked


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_batches_larger_than_the_seats_left_sell_exactly_the_seats(
    database_url: str,
) -> None:
    """For every size n from 2 to 64, n buyers at once on a tier of n - 1 seats: exactly
    n - 1 sales and one clean refusal, whatever batches the server formed."""
    with Server(database_url, workers=1) as server:
        async with client(server, 64) as http:
            organizer = await account(http, database_url, "organizer")
            buyers = await asyncio.gather(*(account(http, database_url) for _ in range(8)))
            before = await batch_metric(http)
            for size in range(2, 65):
                tier = {"code": "GA", "name": "GA", "priceCents": 100, "capacity": size - 1}
                event_id = await hot_event(http, organizer, [tier])
                answers = await asyncio.gather(
                    *(
                        http.post("/api/v1/bookings", json=body, headers=headers)
                        for body, headers in (
                            book(event_id, buyers[i % 8], uuid.uuid4().hex) for i in range(size)
                        )
                    )
                )
                codes = Counter(r.status_code for r in answers)
                assert codes == {201: size - 1, 409: 1}, (size, codes)
                counts, drift = await counts_and_drift(database_url, event_id)
                assert drift == [] and counts[0].confirmed == size - 1, (size, counts)
            statements, bookings = (
                a - b for a, b in zip(await batch_metric(http), before, strict=True)
            )
    assert statements < bookings  # some statements carried several bookings


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_batch_whose_connection_is_terminated_loses_and_doubles_nothing(
    database_url: str,
) -> None:
    """`pg_terminate_backend` of the server's connections, again and again, while 48 clients
    book: every 201 names a booking that is stored exactly once, every key that settles ends
    with one booking at most, and the counters match the bookings."""
    database = database_url.rsplit("/", 1)[1]
    terminate = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )
    with Server(database_url) as server:
        async with client(server, 48) as http:
            event_id, attempts = await a_rush(http, database_url, seats=400, attempts=600)
            answered: dict[str, str] = {}
            codes: Counter[int | str] = Counter()
            gate = asyncio.Semaphore(48)
            storming = True

            async def attempt(key: str) -> None:
                body, headers = attempts[key]
                async with gate:
                    try:
                        r = await http.post("/api/v1/bookings", json=body, headers=headers)
                    except httpx.TransportError:
                        codes["transport"] += 1
                        return
                codes[r.status_code] += 1
                if r.status_code == 201:
                    answered[key] = r.json()["data"]["id"]

            async def killer() -> int:
                kills = 0
                while storming:
                    await asyncio.sleep(random.uniform(0.05, 0.2))
                    await pg_admin(terminate)
                    kills += 1
                return kills

            killing = asyncio.create_task(killer())
            await asyncio.gather(*(attempt(key) for key in attempts))
            storming = False
            kills = await killing
            settled = await settle(http, attempts)
    assert kills >= 3 and codes[201] > 0, (kills, codes)
    assert set(codes) <= {201, 409, 503, "transport"}, codes  # a lost connection is never a 500
    # A 201 is final: the key's booking afterwards is the one that 201 named.
    assert all(settled[key] == booking_id for key, booking_id in answered.items())
    counts, drift = await counts_and_drift(database_url, event_id)
    assert drift == []
    assert counts[0].confirmed == len(set(settled.values())) == len(settled) <= 400, codes
    print(f"\n[terminate] kills={kills} codes={dict(codes)} sold={len(settled)}")


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_clients_that_leave_while_their_batch_waits_book_at_most_once(
    database_url: str,
) -> None:
    """Clients that give up after a few milliseconds (their connection closed while the
    request waits to join a batch or is in one), then retry with the same key: each key
    ends with one booking at most, and the seats match the bookings."""
    with Server(database_url) as server:
        async with client(server, 32) as http:
            event_id, attempts = await a_rush(http, database_url, seats=150, attempts=200)
            left = 0
            async with client(server, 64, timeout=0.02) as impatient:

                async def leave(key: str) -> None:
                    nonlocal left
                    body, headers = attempts[key]
                    try:
                        await impatient.post("/api/v1/bookings", json=body, headers=headers)
                    except httpx.TimeoutException:
                        left += 1

                await asyncio.gather(*(leave(key) for key in attempts))
            settled = await settle(http, attempts)
    counts, drift = await counts_and_drift(database_url, event_id)
    assert left > 0  # some clients really left mid-request
    assert drift == []
    assert counts[0].confirmed == len(set(settled.values())) == len(settled) == 150
    print(f"\n[leavers] left={left} sold={len(settled)}")
