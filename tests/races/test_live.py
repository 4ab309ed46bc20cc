"""Live availability (Server-Sent Events) across processes: two instances of the real server
on one database and one Redis; a booking made through either reaches both streams."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson

from tests.support.races import account, hot_event
from tests.support.server import Server


async def watch(base_url: str, event_id: str, seen: list[tuple[float, int]]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=None) as http:
        async with http.stream("GET", f"/api/v1/events/{event_id}/availability/stream") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith(
                "text/event-stream"
            )
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    seen.append((time.monotonic(), orjson.loads(line[5:])["available"]))


async def test_a_booking_reaches_streams_on_other_processes(
    postgresql_url: str, shared_redis_url: str
) -> None:
    redis_url = shared_redis_url
    with (
        Server(postgresql_url, workers=1, redis_url=redis_url) as one,
        Server(postgresql_url, workers=1, redis_url=redis_url) as two,
    ):
        async with httpx.AsyncClient(base_url=two.base_url, timeout=30) as http:
            organizer = await account(http, postgresql_url, "organizer")
            buyer = await account(http, postgresql_url)
            tiers = [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 50}]
            event_id = await hot_event(http, organizer, tiers)
            first: list[tuple[float, int]] = []
            second: list[tuple[float, int]] = []
            streams = [
                asyncio.create_task(watch(one.base_url, event_id, first)),
                asyncio.create_task(watch(two.base_url, event_id, second)),
            ]
            try:
                async with asyncio.timeout(30):
                    while not (first and second):
                        assert not any(s.done() for s in streams), [s.exception() for s in streams]
                        await asyncio.sleep(0.05)
                booked_at = time.monotonic()
                headers = buyer.headers | {"Idempotency-Key": uuid.uuid4().hex}
                r = await http.post(
                    "/api/v1/bookings",
                    json={"eventId": event_id, "tier": "GA", "quantity": 3},
                    headers=headers,
                )
                assert r.status_code == 201
                deadline = booked_at + 10
                while time.monotonic() < deadline and not (
                    any(a == 47 for _, a in first) and any(a == 47 for _, a in second)
                ):
                    await asyncio.sleep(0.02)
            finally:
                for stream in streams:
                    stream.cancel()
                await asyncio.gather(*streams, return_exceptions=True)
    assert first[0][1] == second[0][1] == 50  # the current state at connect
    delays = [next(t for t, a in seen if a == 47) - booked_at for seen in (first, second)]
    print(f"\n[live] update reached the two instances after {delays[0]:.3f}s and {delays[1]:.3f}s")
    assert max(delays) < 2.0  # the target is one second; the margin is for a loaded machine
