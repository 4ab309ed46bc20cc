"""Load shedding (issue 29) through the real `ticketboss serve`, rate limits off: with
MAX_IN_FLIGHT=2 and two bookings held up on SQLite's writer lock, the next request gets 503
OVERLOADED with Retry-After at once (urllib posting its whole body in one write reads it),
/health and /ready still answer, and the held bookings complete once the lock is free."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest

from tests.support.processes import flock_waiters
from tests.support.races import account, hot_event
from tests.support.server import Server

pytestmark = pytest.mark.sqlite


async def test_past_the_cap_requests_get_503_at_once_and_health_answers(tmp_path: Path) -> None:
    database = tmp_path / "shed.db"
    url = f"sqlite:///{database}"
    with Server(url, workers=1, MAX_IN_FLIGHT="2", OVERLOAD_RETRY_AFTER_SECONDS="7") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            organizer = await account(http, url, "organizer")
            buyer = await account(http, url)
            tiers = [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 5}]
            event_id = await hot_event(http, organizer, tiers)
            body = {"eventId": event_id, "tier": "GA", "quantity": 1}

            held = os.open(f"{database}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(held, fcntl.LOCK_EX)
            try:
                slow = [
                    asyncio.create_task(
                        http.post(
                            "/api/v1/bookings",
                            json=body,
                            headers=buyer.headers | {"Idempotency-Key": f"shed-{n}"},
                        )
                    )
                    for n in range(2)
                ]
                deadline = time.monotonic() + 30
                while not flock_waiters() - {os.getpid()} and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)  # the second one queues behind the first in-process

                request = urllib.request.Request(
                    server.base_url + "/api/v1/bookings",
                    data=b"x" * (900 << 10),
                    method="POST",
                    headers={"Content-Type": "application/json"} | buyer.headers,
                )
                with pytest.raises(urllib.error.HTTPError) as refused:
                    await asyncio.to_thread(urllib.request.urlopen, request, timeout=30)
                assert refused.value.code == 503
                assert refused.value.headers["Retry-After"] == "7"
                assert json.loads(refused.value.read())["code"] == "OVERLOADED"
                anonymous = await http.get("/api/v1/events")
                assert anonymous.status_code == 503
                assert (await http.get("/health")).status_code == 200
                assert (await http.get("/ready")).status_code == 200
            finally:
                os.close(held)
            assert [(await task).status_code for task in slow] == [201, 201]
            assert (await http.get("/api/v1/events")).status_code == 200
