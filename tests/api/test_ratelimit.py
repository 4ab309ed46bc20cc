"""Rate limits on the limits library, against the real Redis and fakeredis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.support.api import Api, make_settings, running_api


@pytest.fixture
async def limited(sqlite_url: str, cache_url: str | None) -> AsyncIterator[Api]:
    settings = make_settings(
        sqlite_url,
        redis_url=cache_url,
        rate_limit_enabled=True,
        rate_limit_anonymous="5/minute",
        rate_limit_authenticated="1000/minute",
        rate_limit_login_ip="4/minute",
        rate_limit_login_account="2/minute",
        rate_limit_login_account_ip="2/minute",
    )
    async with running_api(settings) as api:
        if cache_url:
            await api.ctx.cache.client.flushdb()
        yield api


async def test_anonymous_calls_are_limited_per_ip_with_headers(limited: Api) -> None:
    codes = [(await limited.client.get("/api/v1/events")).status_code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    r = await limited.client.get("/api/v1/events")
    assert r.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["RateLimit-Limit"] == "5" and r.headers["RateLimit-Remaining"] == "0"
    assert int(r.headers["RateLimit-Reset"]) >= 1
    assert (
        await limited.client.get("/health")
    ).status_code == 200  # operations endpoints are not limited


async def test_a_window_runs_from_its_first_hit(limited: Api) -> None:
    """The fixed windows here (and in tests/races) are not wall-clock minutes: limits sets a
    counter's TTL at its first hit, so a test that stays under a minute never straddles two."""
    redis = limited.ctx.cache.client
    await limited.client.get("/api/v1/events")
    keys = [key async for key in redis.scan_iter("LIMITS*")]
    assert len(keys) == 1
    assert 58 <= await redis.ttl(keys[0]) <= 60


async def test_login_is_limited_per_account_and_per_ip(limited: Api) -> None:
    body = {"email": "victim@example.com", "password": "guessing-1234"}
    codes = [
        (await limited.client.post("/api/v1/auth/login", json=body)).status_code for _ in range(3)
    ]
    assert codes == [401, 401, 429]  # per account: 2/minute
    other = [
        (
            await limited.client.post(
                "/api/v1/auth/login",
                json={"email": f"u{i}@example.com", "password": "guessing-1234"},
            )
        ).status_code
        for i in range(2)
    ]
    assert other == [401, 429]  # per IP: 4/minute counts every attempt from this address


@asynccontextmanager
async def from_address(api: Api, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app whose requests come from `ip`."""
    app = api.client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_failed_logins_from_anywhere_do_not_lock_the_owner_out(limited: Api) -> None:
    """Issue 14: five wrong passwords a minute from any IPs made the owner's correct one 429.
    Issue 30: yet every new address got its guess heard, so guesses grew with the pool of
    addresses. Past the account's budget only addresses that signed in before are heard."""
    owner = await limited.user()
    wrong = {"email": owner.email, "password": "not the password"}
    right = {"email": owner.email, "password": owner.password}
    async with from_address(limited, "192.0.2.50") as home:  # the owner signed in here before
        assert (await home.post("/api/v1/auth/login", json=right)).status_code == 200
    codes = []
    for i in range(6):  # well past the per-account budget (2/minute), from six addresses
        async with from_address(limited, f"198.51.100.{i}") as attacker:
            r = await attacker.post("/api/v1/auth/login", json=wrong)
            codes.append(r.status_code)
    assert codes == [401, 401] + [429] * 4  # only the budget's worth of guesses was checked
    assert 1 <= int(r.headers["Retry-After"]) <= 60 and r.json()["code"] == "RATE_LIMITED"
    async with from_address(limited, "192.0.2.50") as home:
        r = await home.post("/api/v1/auth/login", json=right)
        assert r.status_code == 200, r.text
    async with from_address(limited, "198.51.100.0") as attacker:  # it has been failing
        r = await attacker.post("/api/v1/auth/login", json=right)
        assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED"
    async with from_address(limited, "203.0.113.99") as new:  # unknown: waits out the window
        assert (await new.post("/api/v1/auth/login", json=right)).status_code == 429


async def test_failures_from_one_address_are_throttled_tightly(limited: Api) -> None:
    owner = await limited.user()
    wrong = {"email": owner.email, "password": "not the password"}
    async with from_address(limited, "198.51.100.77") as attacker:
        codes = [
            (await attacker.post("/api/v1/auth/login", json=wrong)).status_code for _ in range(3)
        ]
    assert codes == [401, 401, 429]
