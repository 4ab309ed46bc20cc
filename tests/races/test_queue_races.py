"""The waiting room through the real server (2 workers, a real Redis): the drawn order kept to
the last admission, the configured rate, `maxActive`, a killed admitter, enforcement.

High rates and short sessions keep these quick; the rate itself is checked over ten seconds.
Every test prints what it measured (pytest -s).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import signal
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from core.queue import keys
from tests.support.accounts import Account
from tests.support.queue import (
    admitted_at,
    join_all,
    many_buyers,
    places,
    queue_settings,
    stats,
    until_admitted,
)
from tests.support.races import account, hot_event
from tests.support.server import Server
from tests.support.services import REDIS_URL, database_of_its_own

SECRET = "race-test-secret-0123456789-0123456789"
PREQUEUED = 2000
TICK = "0.05"


def client(server: Server) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60)


@pytest.fixture(scope="module")
def sqlite_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """This module's own database: its server's admitter runs between the tests, beside the
    other tests of this pytest process."""
    with database_of_its_own(request, "sqlite") as url:
        yield url


@pytest.fixture(scope="module")
def redis_server_url() -> str:
    """This pytest process's Redis database (a server of another process, with another
    database, must not share the waiting rooms' keys: its admitter forgets rooms it does not
    know)."""
    return REDIS_URL


@pytest.fixture(scope="module")
def server(sqlite_url: str, redis_server_url: str) -> Iterator[Server]:
    with Server(sqlite_url, redis_url=redis_server_url, QUEUE_TICK_SECONDS=TICK) as running:
        yield running


async def _room(
    http: httpx.AsyncClient, database_url: str, opens_in: timedelta, **queue: Any
) -> tuple[Account, str]:
    organizer = await account(http, database_url, "organizer")
    event_id = await hot_event(
        http, organizer, [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 5000}]
    )
    opens_at = (datetime.now(UTC) + opens_in).isoformat()
    r = await http.patch(
        f"/api/v1/events/{event_id}",
        json={"queue": queue_settings(opensAt=opens_at, **queue)},
        headers=organizer.headers,
    )
    assert r.status_code == 200, r.text
    return organizer, event_id


async def _open_now(http: httpx.AsyncClient, organizer: Account, event_id: str) -> None:
    """Move the opening to a moment from now (it may move while it is ahead), and wait for it."""
    opens_at = datetime.now(UTC) + timedelta(seconds=1)
    r = await http.patch(
        f"/api/v1/events/{event_id}",
        json={"queue": {"opensAt": opens_at.isoformat()}},
        headers=organizer.headers,
    )
    assert r.status_code == 200, r.text
    await asyncio.sleep((opens_at - datetime.now(UTC)).total_seconds() + 0.05)


async def _book(http: httpx.AsyncClient, who: Account, event_id: str, token: str | None) -> int:
    headers = who.headers | {"Idempotency-Key": uuid.uuid4().hex}
    if token:
        headers["Admission-Token"] = token
    r = await http.post(
        "/api/v1/bookings", json={"eventId": event_id, "tier": "GA", "quantity": 1}, headers=headers
    )
    return r.status_code


def _in_drawn_order(found: list[dict[str, Any]], session: int) -> list[float]:
    """The admission times in position order, checked never to go back in time."""
    ordered = sorted(found, key=lambda p: p["position"])
    times = [admitted_at(p, session) for p in ordered]
    assert all(a <= b for a, b in itertools.pairwise(times)), "admitted out of order"
    return times


async def _drawn_order_is_kept(server: Server, database_url: str, n: int) -> None:
    session = 600
    async with client(server) as http:
        organizer, event_id = await _room(
            http, database_url, timedelta(minutes=10), admitPerMinute=60_000, sessionSeconds=session
        )
        started = time.monotonic()
        buyers = await many_buyers(database_url, n + 1, SECRET)
        queued, late = buyers[:n], buyers[n]
        made = time.monotonic()
        await join_all(http, queued, event_id)
        joined = time.monotonic()
        print(f"\naccounts {made - started:.1f} s, joins {joined - made:.1f} s")
        before = await places(http, queued[:5], event_id)
        assert all(p["state"] == "prequeue" and p["position"] is None for p in before)
        assert {await _book(http, b, event_id, None) for b in queued[:20]} == {403}
        await _open_now(http, organizer, event_id)
        r = await http.post(f"/api/v1/events/{event_id}/queue", headers=late.headers)
        assert r.status_code == 201, r.text
        assert r.json()["data"]["position"] == n + 1  # behind every pre-queued buyer
        await until_admitted(http, organizer, event_id, n + 1)
        found = await places(http, buyers, event_id)
        assert await _book(http, buyers[0], event_id, found[0]["admissionToken"]) == 201
        assert await _book(http, buyers[1], event_id, found[0]["admissionToken"]) == 403
    assert sorted(p["position"] for p in found) == list(range(1, n + 2))
    assert all(p["state"] == "admitted" for p in found)
    times = _in_drawn_order(found, session)
    assert admitted_at(found[-1], session) == max(times)  # the late joiner came in last
    # Uniformly random, not arrival order: join rank and drawn place are uncorrelated.
    rho = statistics.correlation(list(range(n)), [p["position"] for p in found[:n]])
    print(f"\n{n} pre-queued: admitted in drawn order; join/place correlation {rho:+.3f}")
    assert abs(rho) < 4 / math.sqrt(n)  # four standard deviations of a random order's


async def test_prequeued_buyers_are_admitted_in_their_drawn_order(
    server: Server, sqlite_url: str
) -> None:
    await _drawn_order_is_kept(server, sqlite_url, PREQUEUED)


async def test_admissions_follow_the_configured_rate(server: Server, sqlite_url: str) -> None:
    rate, session, n = 600, 120, 130
    async with client(server) as http:
        organizer, event_id = await _room(
            http, sqlite_url, timedelta(minutes=10), admitPerMinute=rate, sessionSeconds=session
        )
        buyers = await many_buyers(sqlite_url, n, SECRET)
        await join_all(http, buyers, event_id)
        await _open_now(http, organizer, event_id)
        await until_admitted(http, organizer, event_id, n, timeout=40)
        measured = (await stats(http, organizer, event_id))["admittedPerMinute"]
        found = await places(http, buyers, event_id)
    times = _in_drawn_order(found, session)
    window = 10.0  # a sixth of a minute: 100 admissions at 600 a minute
    counted = sum(1 for t in times if times[0] <= t < times[0] + window)
    print(f"\nrate {rate}/min: {counted} admitted in {window:.0f} s; stats say {measured}/min")
    assert abs(counted - rate * window / 60) <= 1


async def test_max_active_is_never_exceeded_under_two_workers(
    server: Server, sqlite_url: str
) -> None:
    session, limit, n = 1, 4, 24
    async with client(server) as http:
        organizer, event_id = await _room(
            http,
            sqlite_url,
            timedelta(minutes=10),
            admitPerMinute=60_000,
            maxActive=limit,
            sessionSeconds=session,
        )
        buyers = await many_buyers(sqlite_url, n, SECRET)
        await join_all(http, buyers, event_id)
        await _open_now(http, organizer, event_id)
        await until_admitted(http, organizer, event_id, n, timeout=40)
        found = await places(http, buyers, event_id)
    times = _in_drawn_order(found, session)
    # Sessions are [admitted, admitted + session): at no instant more than `limit` of them.
    edges = sorted([(t, 1) for t in times] + [(t + session, -1) for t in times])
    active = peak = 0
    for _, step in edges:
        active += step
        peak = max(peak, active)
    print(f"\nmaxActive {limit}: peak {peak} active of {n}")
    assert peak == limit


async def test_a_killed_admitter_loses_nobody_s_place(
    server: Server, sqlite_url: str, redis_server_url: str
) -> None:
    session, n = 600, 300
    async with client(server) as http:
        organizer, event_id = await _room(
            http, sqlite_url, timedelta(minutes=10), admitPerMinute=3000, sessionSeconds=session
        )
        buyers = await many_buyers(sqlite_url, n, SECRET)
        await join_all(http, buyers, event_id)
        await _open_now(http, organizer, event_id)
        await asyncio.sleep(1.0)  # mid-admission: about 50 in
        lease = keys(event_id)[-1]
        with redis.Redis.from_url(redis_server_url) as r:
            holder = r.get(lease)
        assert holder is not None
        pid = int(holder.decode().split(":")[1])
        before = (await stats(http, organizer, event_id))["admitted"]
        os.kill(pid, signal.SIGKILL)
        await until_admitted(http, organizer, event_id, n, timeout=60)
        found = await places(http, buyers, event_id)
    print(f"\nkilled admitter {pid} after {before} admissions; all {n} admitted in order")
    assert 0 < before < n
    assert sorted(p["position"] for p in found) == list(range(1, n + 1))
    _in_drawn_order(found, session)


@pytest.mark.redis_cluster
async def test_the_waiting_room_on_a_redis_cluster(sqlite_url: str, redis_cluster_url: str) -> None:
    with Server(sqlite_url, redis_url=redis_cluster_url, QUEUE_TICK_SECONDS=TICK) as cluster:
        await _drawn_order_is_kept(cluster, sqlite_url, 200)


async def test_the_stream_pushes_the_place_until_admission(server: Server, sqlite_url: str) -> None:
    async with client(server) as http:
        organizer, event_id = await _room(
            http, sqlite_url, timedelta(minutes=10), admitPerMinute=60_000
        )
        (buyer,) = await many_buyers(sqlite_url, 1, SECRET)
        await join_all(http, [buyer], event_id)
        states = []
        url = f"/api/v1/events/{event_id}/queue/stream"
        async with http.stream("GET", url, headers=buyer.headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    place = json.loads(line.removeprefix("data:"))
                    states.append(place["state"])
                    if place["state"] == "prequeue":
                        await _open_now(http, organizer, event_id)
                    if place["state"] == "admitted":
                        assert place["admissionToken"] and place["position"] == 1
                        break
        assert await _book(http, buyer, event_id, None) == 403
        assert await _book(http, buyer, event_id, place["admissionToken"]) == 201
    assert states[0] == "prequeue" and states[-1] == "admitted"
