"""Live streams (issue 29) through the real `ticketboss serve`, rate limits off (the caps are
resource limits): per account and per IP 429, per worker 503, both with Retry-After, a freed
slot is reusable; heartbeat comments; an idle stream is closed; and one change is computed
once for all its subscribers, who receive identical bytes (counted by the server's
`ticketboss_stream_frames_computed_total`, not by timing)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.queue import queue_settings
from tests.support.races import account, hot_event, scrape
from tests.support.server import Server
from tests.support.streams import Stream

pytestmark = pytest.mark.sqlite
COMPUTED = "ticketboss_stream_frames_computed_total"
OPEN = "ticketboss_streams_open"
TIERS = [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 30}]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('streams') / 'streams.db'}"


@pytest.fixture(scope="module")
def capped(database: str) -> Iterator[Server]:
    limits = {
        "STREAM_MAX_PER_IP": "3",
        "STREAM_MAX_PER_ACCOUNT": "2",
        "STREAM_MAX_PER_WORKER": "24",
        "STREAM_HEARTBEAT_SECONDS": "0.3",
        "STREAM_RETRY_AFTER_SECONDS": "4",
    }
    with Server(database, workers=1, **limits) as server:
        yield server


@contextlib.asynccontextmanager
async def streams() -> AsyncIterator[list[Stream]]:
    """Streams opened in the block, all closed after it."""
    opened: list[Stream] = []
    try:
        yield opened
    finally:
        await asyncio.gather(*(s.close() for s in opened))


async def open_stream(
    opened: list[Stream], server: Server, event_id: str, source: str, token: str | None = None
) -> httpx.Response:
    headers = {"Authorization": token} if token else None
    stream = Stream(
        server.base_url, f"/api/v1/events/{event_id}/availability/stream", source, headers
    )
    opened.append(stream)
    return await stream.open()


async def quiet(http: httpx.AsyncClient) -> None:
    """Wait until the server has let go of every stream of an earlier test."""
    async with asyncio.timeout(30):
        while (await scrape(http)).get(OPEN, 0) != 0:
            await asyncio.sleep(0.05)


def refused(response: httpx.Response, status: int, code: str) -> bool:
    return (
        response.status_code == status
        and response.headers.get("retry-after") == "4"
        and response.json()["code"] == code
    )


async def test_streams_are_capped_per_account_ip_and_worker(capped: Server, database: str) -> None:
    async with httpx.AsyncClient(base_url=capped.base_url, timeout=30) as http, streams() as opened:
        await quiet(http)
        organizer = await account(http, database, "organizer")
        buyer = await account(http, database)
        event_id = await hot_event(http, organizer, TIERS)
        token = buyer.authorization
        for _ in range(2):
            assert (
                await open_stream(opened, capped, event_id, "127.0.0.1", token)
            ).status_code == 200
        # the account's third, from another address: the account's cap
        third = await open_stream(opened, capped, event_id, "127.0.0.2", token)
        assert refused(third, 429, "TOO_MANY_STREAMS"), third.text
        # 127.0.0.1 holds two; one more anonymous fits, the next does not
        assert (await open_stream(opened, capped, event_id, "127.0.0.1")).status_code == 200
        fourth = await open_stream(opened, capped, event_id, "127.0.0.1")
        assert refused(fourth, 429, "TOO_MANY_STREAMS"), fourth.text
        # 3 open; seven more addresses × 3 fill the worker's 24
        for host in range(1, 8):
            for _ in range(3):
                r = await open_stream(opened, capped, event_id, f"127.0.1.{host}")
                assert r.status_code == 200, r.text
        full = await open_stream(opened, capped, event_id, "127.0.2.1")
        assert refused(full, 503, "STREAMS_FULL"), full.text
        assert (await scrape(http))[OPEN] == 24
        # a closed stream frees its slot (the server notices the client left)
        await next(s for s in opened if s.reader is not None).close()
        async with asyncio.timeout(30):
            while (await open_stream(opened, capped, event_id, "127.0.2.1")).status_code != 200:
                await asyncio.sleep(0.1)


async def test_one_change_is_computed_once_and_every_subscriber_gets_the_same_bytes(
    capped: Server, database: str
) -> None:
    async with httpx.AsyncClient(base_url=capped.base_url, timeout=30) as http, streams() as opened:
        await quiet(http)
        organizer = await account(http, database, "organizer")
        buyer = await account(http, database)
        event_id = await hot_event(http, organizer, TIERS)
        before = (await scrape(http)).get(COMPUTED, 0)
        for n in range(21):
            r = await open_stream(opened, capped, event_id, f"127.0.3.{n // 3 + 1}")
            assert r.status_code == 200, r.text
        await asyncio.gather(*(s.wait_for(lambda s: bool(s.events())) for s in opened))
        joined = (await scrape(http))[COMPUTED]
        r = await http.post(
            "/api/v1/bookings",
            json={"eventId": event_id, "tier": "GA", "quantity": 1},
            headers=buyer.headers | {"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text

        def booked(stream: Stream) -> bytes | None:
            return next((f for f in stream.events() if available(f) == 29), None)

        await asyncio.gather(*(s.wait_for(lambda s: booked(s) is not None) for s in opened))
        updated = (await scrape(http))[COMPUTED]
        # a heartbeat comment on a quiet stream, for proxies
        await opened[0].wait_for(lambda s: b": ping" in s.frames)
    assert {available(s.events()[0]) for s in opened} == {30}
    assert len({booked(s) for s in opened}) == 1  # the very same frame, id included
    # 21 subscribers joined for one computation (two if a notice of the event's publication
    # arrived meanwhile), and the booking cost one (two if its notices came apart)
    print(f"\n[streams] computed {joined - before:.0f} at join, {updated - joined:.0f} per change")
    assert joined - before <= 2 and updated - joined <= 2


def available(frame: bytes) -> int:
    data = next(line for line in frame.split(b"\n") if line.startswith(b"data: "))
    value: int = orjson.loads(data[6:])["available"]
    return value


async def test_an_idle_stream_is_closed_after_heartbeats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    limits = {"STREAM_IDLE_SECONDS": "1.5", "STREAM_HEARTBEAT_SECONDS": "0.2"}
    with Server(url, workers=1, **limits) as server:
        async with (
            httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
            streams() as opened,
        ):
            organizer = await account(http, url, "organizer")
            event_id = await hot_event(http, organizer, TIERS)
            assert (await open_stream(opened, server, event_id, "127.0.0.1")).status_code == 200
            async with asyncio.timeout(30):
                await opened[0].ended.wait()
            assert (await scrape(http)).get(OPEN, 0) == 0
    frames = opened[0].frames
    assert frames[0] == b"retry: 3000" and available(opened[0].events()[0]) == 30
    assert b": ping" in frames  # heartbeats, and still closed: they do not count as updates


async def test_a_waiting_room_stream_counts_against_the_same_caps(
    capped: Server, database: str
) -> None:
    """A place in a waiting room is one client's own state (no shared feed), yet its stream
    holds a slot like any other: the account's third is refused, a closed one frees its slot."""
    async with httpx.AsyncClient(base_url=capped.base_url, timeout=30) as http, streams() as opened:
        await quiet(http)
        organizer = await account(http, database, "organizer")
        buyer = await account(http, database)
        event_id = await hot_event(http, organizer, TIERS)
        r = await http.patch(
            f"/api/v1/events/{event_id}",
            json={"queue": queue_settings()},
            headers=organizer.headers,
        )
        assert r.status_code == 200, r.text
        assert (
            await http.post(f"/api/v1/events/{event_id}/queue", headers=buyer.headers)
        ).status_code == 201
        path = f"/api/v1/events/{event_id}/queue/stream"
        for n in range(2):
            stream = Stream(capped.base_url, path, f"127.0.4.{n + 1}", buyer.headers)
            opened.append(stream)
            assert (await stream.open()).status_code == 200
        await opened[0].wait_for(lambda s: bool(s.events()))
        [frame] = opened[0].events()
        data = next(line for line in frame.split(b"\n") if line.startswith(b"data: "))
        assert frame.startswith(b"event: place") and orjson.loads(data[6:])["state"] == "prequeue"
        third = Stream(capped.base_url, path, "127.0.4.9", buyer.headers)
        opened.append(third)
        assert refused(await third.open(), 429, "TOO_MANY_STREAMS")
        assert (await scrape(http))[OPEN] == 2
        await opened[0].close()
        async with asyncio.timeout(30):  # noticed at the stream's next heartbeat
            while (await scrape(http))[OPEN] != 1:
                await asyncio.sleep(0.1)
