"""The tiered contract through the real server (uvicorn, 2 workers): 300 buyers race for a
100-seat VIP tier, each asking for 1-5 seats. Run with -s to see what was measured."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter

import httpx
import pytest

from tests.support.races import counts_and_drift
from tests.support.server import Server

REQUESTS = 300
CAPACITY = 100
SOLD_OUT = {
    "code": "INSUFFICIENT_TICKETS",
    "message": "Requested quantity exceeds available tickets",
    "errors": [{"path": "quantity", "message": "Requested quantity exceeds available tickets"}],
}


@pytest.mark.parametrize(
    "database_url",
    [
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
    indirect=True,
)
async def test_300_buyers_racing_for_100_vip_seats_never_oversell(database_url: str) -> None:
    backend = database_url.split(":", 1)[0]
    show = f"tiered-race-{uuid.uuid4().hex[:8]}"
    rng = random.Random(16)
    quantities = [rng.randint(1, 5) for _ in range(REQUESTS)]
    assert quantities.count(1) > 20  # plenty of single seats left to fill the last gaps
    env = {
        "TICKETBOSS_ANONYMOUS_TIERS": "true",
        "TICKETBOSS_TIERED_EVENT_ID": show,
        "TICKETBOSS_TIERED_VIP_CAPACITY": str(CAPACITY),
    }
    with Server(database_url, **env) as server:
        limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as http:
            await http.get("/api/tickets")  # both workers are up; warm nothing else

            async def attempt(i: int) -> httpx.Response:
                body = {"userId": f"buyer-{i}", "tier": "VIP", "quantity": quantities[i]}
                return await http.post("/api/tickets/book", json=body)

            started = time.perf_counter()
            results = await asyncio.gather(*(attempt(i) for i in range(REQUESTS)))
            elapsed = time.perf_counter() - started
            listed = {t["tier"]: t for t in (await http.get("/api/tickets")).json()}

    codes = Counter(r.status_code for r in results)
    assert set(codes) <= {201, 422}, [r.text for r in results if r.status_code not in (201, 422)]
    refusals = [r.json() for r in results if r.status_code == 422]
    assert all(
        {k: v for k, v in body.items() if k != "availableQuantity"} == SOLD_OUT for body in refusals
    ), refusals[:3]
    assert all(0 <= body["availableQuantity"] <= 4 for body in refusals)
    booked = [r.json() for r in results if r.status_code == 201]
    assert all(b["bookedQuantity"] == quantities[i] for i, b in _indexed(results))
    assert all(b["remainingQuantity"] >= 0 for b in booked)
    sold = sum(b["bookedQuantity"] for b in booked)
    assert sold == CAPACITY
    assert listed["VIP"]["availableQuantity"] == 0 and listed["VIP"]["totalQuantity"] == CAPACITY
    counts, drift = await counts_and_drift(database_url, show)
    assert drift == []
    vip = next(c for c in counts if c.code == "VIP")
    assert (vip.confirmed, vip.pending, vip.available) == (CAPACITY, 0, 0)
    print(
        f"\n[tickets race {backend}] requests={REQUESTS} sold={sold} in {len(booked)} bookings, "
        f"refused={codes[422]} (all 422 INSUFFICIENT_TICKETS) in {elapsed:.2f}s"
    )


def _indexed(results: list[httpx.Response]) -> list[tuple[int, dict[str, int]]]:
    return [(i, r.json()) for i, r in enumerate(results) if r.status_code == 201]
