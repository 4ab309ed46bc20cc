"""Helpers for waiting-room tests: settings, and waiting (in real time) for a place's state."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core import clock
from core.config import Settings
from core.security import Principal, TokenService
from core.storage import build_storage
from core.storage.records import User, new_id
from tests.support.accounts import Account


def queue_settings(**fields: Any) -> dict[str, Any]:
    """A waiting room opening a minute from now (on the wall clock), 600 admissions a minute."""
    return {
        "opensAt": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        "admitPerMinute": 600,
    } | fields


async def wait_for_state(
    client: httpx.AsyncClient, who: Account, event_id: str, state: str, timeout: float = 15
) -> dict[str, Any]:
    """Poll `…/queue/me` until the place is in `state`; its data."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/api/v1/events/{event_id}/queue/me", headers=who.headers)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        if data["state"] == state:
            return data
        assert time.monotonic() < deadline, f"still {data} after {timeout} s"
        await asyncio.sleep(0.05)


async def many_buyers(database_url: str, n: int, jwt_secret: str) -> list[Account]:
    """`n` buyer accounts written straight through the storage port, with access tokens signed
    by the server's secret: registering each through the API would spend an Argon2 hash apiece
    (a minute of CPU for 2,000) on what these tests do not examine."""
    settings = Settings(database_url=database_url, jwt_secret=jwt_secret, _env_file=None)  # type: ignore[call-arg]
    tokens = TokenService(settings)
    storage = build_storage(database_url)
    now = clock.now()
    accounts = []
    try:
        users = [
            User(new_id(), f"q-{uuid.uuid4().hex}@example.com", "Q", "user", "unusable", now, now)
            for _ in range(n)
        ]
        for chunk in range(0, n, 50):
            await asyncio.gather(*(storage.users.create(u) for u in users[chunk : chunk + 50]))
        for user in users:
            token = tokens.access_token(Principal(user.id, "user", user.token_version))
            accounts.append(Account(user.id, user.email, "", "user", token, ""))
    finally:
        await storage.close()
    return accounts


async def join_all(client: httpx.AsyncClient, buyers: list[Account], event_id: str) -> None:
    """Every buyer joins (a few dozen at a time), in list order per batch."""
    for chunk in range(0, len(buyers), 64):
        batch = buyers[chunk : chunk + 64]
        replies = await asyncio.gather(
            *(client.post(f"/api/v1/events/{event_id}/queue", headers=b.headers) for b in batch)
        )
        assert all(r.status_code == 201 for r in replies), [r.text for r in replies][:3]


async def get(client: httpx.AsyncClient, url: str, who: Account) -> httpx.Response:
    """A GET retried over a connection lost to a killed worker (the server replaces it)."""
    for attempt in range(5):
        try:
            return await client.get(url, headers=who.headers)
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def places(
    client: httpx.AsyncClient, buyers: list[Account], event_id: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for chunk in range(0, len(buyers), 64):
        replies = await asyncio.gather(
            *(
                get(client, f"/api/v1/events/{event_id}/queue/me", b)
                for b in buyers[chunk : chunk + 64]
            )
        )
        for r in replies:
            assert r.status_code == 200, r.text
            out.append(r.json()["data"])
    return out


async def stats(client: httpx.AsyncClient, organizer: Account, event_id: str) -> dict[str, Any]:
    r = await get(client, f"/api/v1/events/{event_id}/queue/stats", organizer)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def until_admitted(
    client: httpx.AsyncClient, organizer: Account, event_id: str, n: int, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while (current := await stats(client, organizer, event_id))["admitted"] < n:
        assert time.monotonic() < deadline, current
        await asyncio.sleep(0.2)


def admitted_at(place: dict[str, Any], session_seconds: int) -> float:
    """When the server admitted this place (epoch seconds): its admittedUntil less the session."""
    until = datetime.fromisoformat(place["admittedUntil"])
    return until.timestamp() - session_seconds
