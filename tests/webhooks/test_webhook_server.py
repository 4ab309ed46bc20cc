"""Webhooks through the real server (`ticketboss serve`, two workers, PostgreSQL): bookings made
through the API arrive signed at a real receiver, each exactly once, and a booking whose
server was killed with SIGKILL right after its 201 is still delivered after the restart."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx

from tests.support.accounts import Account
from tests.support.races import account, hot_event
from tests.support.receiver import Receiver
from tests.support.server import Server

ENV = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_POLL_SECONDS": "0.1"}
TIERS = [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 1000}]
STORM = 500


async def book(http: httpx.AsyncClient, buyer: Account, event_id: str) -> str:
    r = await http.post(
        "/api/v1/bookings",
        json={"eventId": event_id, "tier": "GA", "quantity": 1},
        headers=buyer.headers | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    booking_id: str = r.json()["data"]["id"]
    return booking_id


async def webhook(http: httpx.AsyncClient, owner: Account, url: str) -> dict[str, Any]:
    r = await http.post(
        "/api/v1/webhooks",
        json={"url": url, "events": ["booking.created"]},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def test_bookings_arrive_signed_each_exactly_once(postgresql_url: str) -> None:
    """A 500-booking storm through two workers: every booking's webhook arrives exactly once."""
    async with Receiver() as receiver:
        with Server(postgresql_url, workers=2, **ENV) as server:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
                organizer = await account(http, postgresql_url, "organizer")
                buyers = [await account(http, postgresql_url) for _ in range(4)]
                event_id = await hot_event(http, organizer, TIERS)
                hook = await webhook(http, organizer, receiver.url)
                booked = await asyncio.gather(
                    *(book(http, buyers[i % 4], event_id) for i in range(STORM))
                )
                await receiver.wait_until(lambda r: len({x.id for x in r}) >= STORM, timeout=180)
                await asyncio.sleep(1)  # room for a duplicate to show up, were there one
    ids = Counter(r.id for r in receiver.received)
    assert len(ids) == STORM and set(ids.values()) == {1}
    got = {r.verify(hook["secret"])["data"]["bookingId"] for r in receiver.received}
    assert got == set(booked)


async def test_a_booking_is_delivered_after_the_server_is_killed(postgresql_url: str) -> None:
    async with Receiver() as receiver:
        # This server sends nothing after its first look (its next poll is an hour away).
        with Server(postgresql_url, workers=1, **(ENV | {"WEBHOOK_POLL_SECONDS": "3600"})) as first:
            async with httpx.AsyncClient(base_url=first.base_url, timeout=60) as http:
                organizer = await account(http, postgresql_url, "organizer")
                buyer = await account(http, postgresql_url)
                event_id = await hot_event(http, organizer, TIERS)
                hook = await webhook(http, organizer, receiver.url)
                booking_id = await book(http, buyer, event_id)
            first.kill()
        assert receiver.received == []
        with Server(postgresql_url, workers=1, **ENV):
            [got] = await receiver.wait_until(lambda r: len(r) >= 1, timeout=120)
    assert got.verify(hook["secret"])["data"]["bookingId"] == booking_id
