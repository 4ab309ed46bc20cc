"""Helpers for waiting-room tests: settings, and waiting (in real time) for a place's state."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

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
