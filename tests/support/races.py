"""Helpers for tests against the real server: accounts and events made through its HTTP API,
and read-only checks of the invariant straight from storage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core import clock
from core.storage import build_storage
from core.storage.records import Drift, TierCount
from tests.support.accounts import Account

PASSWORD = "race condition passphrase"


async def promote(database_url: str, user_id: str, role: str) -> None:
    storage = build_storage(database_url)
    try:
        await storage.users.set_role(user_id, role, clock.now())  # type: ignore[arg-type]
    finally:
        await storage.close()


async def account(client: httpx.AsyncClient, database_url: str, role: str = "user") -> Account:
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": role}
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["data"]["user"]["id"]
    if role != "user":
        await promote(database_url, user_id, role)
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    return Account(user_id, email, PASSWORD, role, data["accessToken"], data["refreshToken"])


async def hot_event(
    client: httpx.AsyncClient, organizer: Account, tiers: list[dict[str, Any]]
) -> str:
    """A published event with these tiers, ten days from now; its id."""
    body = {
        "name": "Hot Show",
        "venue": "Arena",
        "startsAt": (datetime.now(UTC) + timedelta(days=10)).isoformat(),
        "tiers": tiers,
    }
    r = await client.post("/api/v1/events", json=body, headers=organizer.headers)
    assert r.status_code == 201, r.text
    event_id: str = r.json()["data"]["id"]
    r = await client.post(f"/api/v1/events/{event_id}/publish", headers=organizer.headers)
    assert r.status_code == 200, r.text
    return event_id


async def counts_and_drift(database_url: str, event_id: str) -> tuple[list[TierCount], list[Drift]]:
    """Availability computed from bookings, and the reconcile report, read from storage.

    Both are reads: an observer must never compete with the system under test for writes.
    """
    storage = build_storage(database_url)
    try:
        counts = await storage.events.availability(event_id, clock.now())
        drift = [
            d
            for d in await storage.bookings.recount(clock.now(), fix=False)
            if d.event_id == event_id
        ]
        return counts, drift
    finally:
        await storage.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def scrape(http: httpx.AsyncClient) -> dict[str, float]:
    """The server's Prometheus samples (all workers), by name and labels."""
    text = (await http.get("/metrics")).text
    samples = (
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    return {name: float(value) for name, value in samples}
