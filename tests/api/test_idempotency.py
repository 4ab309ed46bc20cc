"""Idempotency-Key semantics against the real Redis and fakeredis; durable backstop on every database."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, make_settings, running_api
from tests.support.services import free_port, service_missing


@pytest.fixture
async def cached_api(sqlite_url: str, cache_url: str | None) -> AsyncIterator[Api]:
    """SQLite with the cache on fakeredis and on the real Redis."""
    async with running_api(make_settings(sqlite_url, redis_url=cache_url)) as api:
        yield api


async def booking_count(api: Api, who: dict) -> int:
    return len(
        (
            await api.client.get("/api/v1/bookings", params={"limit": 100}, headers=who.headers)
        ).json()["data"]
    )


async def test_replay_is_identical_and_creates_nothing(cached_api: Api) -> None:
    api = cached_api
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    first = await api.book(buyer, event["id"], 2, key="replay-1")
    second = await api.book(buyer, event["id"], 2, key="replay-1")
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert (
        second.headers["Idempotent-Replayed"] == "true"
        and "Idempotent-Replayed" not in first.headers
    )
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["content-type"] == first.headers["content-type"]
    assert await booking_count(api, buyer) == 1


async def test_same_key_different_body_is_422(cached_api: Api) -> None:
    api = cached_api
    organizer, buyer, other = await api.user("organizer"), await api.user(), await api.user()
    event = await api.event(organizer)
    await api.book(buyer, event["id"], 2, key="k-reuse")
    r = await api.book(buyer, event["id"], 3, key="k-reuse")
    assert r.status_code == 422 and r.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    # another user's identical key is independent
    assert (await api.book(other, event["id"], 3, key="k-reuse")).status_code == 201
    assert await booking_count(api, buyer) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9".encode(), "tab\there"])
async def test_bad_keys_are_400(cached_api: Api, key: str) -> None:
    api = cached_api
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    headers = buyer.headers | {"Idempotency-Key": key}
    r = await api.client.post(
        "/api/v1/bookings",
        json={"eventId": event["id"], "tier": "GA", "quantity": 1},
        headers=headers,
    )
    assert r.status_code == 400 and r.json()["code"] == "INVALID_IDEMPOTENCY_KEY"


async def test_key_is_required_on_bookings(cached_api: Api) -> None:
    api = cached_api
    buyer = await api.user()
    r = await api.client.post(
        "/api/v1/bookings",
        json={"eventId": "e", "tier": "GA", "quantity": 1},
        headers=buyer.headers,
    )
    assert r.status_code == 400 and r.json()["code"] == "IDEMPOTENCY_KEY_REQUIRED"


async def test_fifty_concurrent_identical_requests_make_one_booking(cached_api: Api) -> None:
    api = cached_api
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    results = await asyncio.gather(
        *(api.book(buyer, event["id"], 1, key="storm-key") for _ in range(50))
    )
    statuses = [r.status_code for r in results]
    assert set(statuses) <= {201, 409}
    conflicts = [r.json()["code"] for r in results if r.status_code == 409]
    assert set(conflicts) <= {"IDEMPOTENCY_REQUEST_IN_PROGRESS"}
    ids = {r.json()["data"]["id"] for r in results if r.status_code == 201}
    assert len(ids) == 1
    assert await booking_count(api, buyer) == 1


async def test_idempotency_applies_to_other_posts(cached_api: Api) -> None:
    api = cached_api
    organizer = await api.user("organizer")
    body = {
        "name": "Once",
        "venue": "V",
        "startsAt": "2031-01-01T10:00:00Z",
        "tiers": [{"code": "GA", "name": "G", "priceCents": 1, "capacity": 1}],
    }
    headers = organizer.headers | {"Idempotency-Key": "create-once"}
    first = await api.client.post("/api/v1/events", json=body, headers=headers)
    second = await api.client.post("/api/v1/events", json=body, headers=headers)
    assert first.status_code == 201 and second.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["data"]["id"] == second.json()["data"]["id"]


async def test_flushed_redis_still_one_booking(database_url: str, cache_url: str | None) -> None:
    """The durable backstop: the retry after a lost key returns the original booking."""
    async with running_api(make_settings(database_url, redis_url=cache_url)) as api:
        organizer, buyer = await api.user("organizer"), await api.user()
        event = await api.event(organizer)
        key = f"flush-{uuid.uuid4().hex}"
        first = await api.book(buyer, event["id"], 2, key=key)
        await api.ctx.cache.client.flushdb()
        retry = await api.book(buyer, event["id"], 2, key=key)
        assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json()["data"]["id"] == first.json()["data"]["id"]
        await api.ctx.cache.client.flushdb()
        reused = await api.book(buyer, event["id"], 3, key=key)
        assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert await booking_count(api, buyer) == 1
        avail = (await api.client.get(f"/api/v1/events/{event['id']}/availability")).json()["data"]
        assert avail["available"] == 98


async def test_retry_after_sell_out_returns_the_original(sqlite_url: str) -> None:
    async with running_api(make_settings(sqlite_url)) as api:
        organizer, buyer, rival = await api.user("organizer"), await api.user(), await api.user()
        event = await api.event(
            organizer, tiers=[{"code": "GA", "name": "G", "priceCents": 1, "capacity": 2}]
        )
        first = await api.book(buyer, event["id"], 2, key="last-seats")
        await api.ctx.cache.client.flushdb()
        assert (await api.book(rival, event["id"], 1)).status_code == 409
        retry = await api.book(buyer, event["id"], 2, key="last-seats")
        assert retry.status_code == 201 and retry.json()["data"]["id"] == first.json()["data"]["id"]


class RedisProcess:
    """A throwaway redis-server on its own port, so a test can stop it mid-traffic."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server binary")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return f"redis://127.0.0.1:{self.port}/0"
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)


async def test_redis_outage_fails_open_and_never_double_books(database_url: str) -> None:
    redis = RedisProcess()
    url = redis.start()
    try:
        settings = make_settings(
            database_url,
            redis_url=url,
            rate_limit_enabled=True,
            rate_limit_authenticated="1000/minute",
            rate_limit_anonymous="1000/minute",
        )
        async with running_api(settings) as api:
            organizer, buyer = await api.user("organizer"), await api.user()
            event = await api.event(organizer)
            before = await api.book(buyer, event["id"], 1, key="before-outage")
            assert before.status_code == 201
            assert (await api.client.get("/ready")).status_code == 200
            redis.stop()
            during = [await api.book(buyer, event["id"], 1, key=f"during-{i}") for i in range(5)]
            assert [r.status_code for r in during] == [201] * 5
            retry = await api.book(buyer, event["id"], 1, key="during-0")
            assert (
                retry.status_code == 201
                and retry.json()["data"]["id"] == during[0].json()["data"]["id"]
            )
            again = await api.book(buyer, event["id"], 1, key="before-outage")
            assert again.json()["data"]["id"] == before.json()["data"]["id"]
            ready = await api.client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["components"]["cache"]["status"] == "down"
            assert ready.json()["components"]["database"]["status"] == "up"
            assert await booking_count(api, buyer) == 6
    finally:
        redis.stop()
