"""Orders spanning two tiers racing single-tier bookings of both, through the real server."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

import httpx

from tests.support.races import account, counts_and_drift, hot_event
from tests.support.server import Server

PARALLEL = {"sqlite": 80, "postgresql": 160, "mongodb": 16}


async def test_orders_and_single_bookings_never_oversell_or_split(database_url: str) -> None:
    backend = database_url.split(":", 1)[0]
    n = PARALLEL["mongodb" if backend.startswith("mongodb") else backend]
    vip, ga = n // 8, n // 2
    with Server(database_url) as server:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as http:
            organizer = await account(http, database_url, "organizer")
            buyers = await asyncio.gather(*(account(http, database_url) for _ in range(8)))
            event_id = await hot_event(
                http,
                organizer,
                [
                    {"code": "VIP", "name": "VIP", "priceCents": 20000, "capacity": vip},
                    {"code": "GA", "name": "GA", "priceCents": 4000, "capacity": ga},
                ],
            )

            async def attempt(i: int) -> httpx.Response:
                rng = random.Random(i)
                headers = buyers[i % 8].headers | {"Idempotency-Key": uuid.uuid4().hex}
                if i % 2:
                    items = [
                        {"tier": "VIP", "quantity": 1},
                        {"tier": "GA", "quantity": rng.randint(1, 2)},
                    ]
                    body = {"eventId": event_id, "items": items}
                    return await http.post("/api/v1/orders", json=body, headers=headers)
                body = {"eventId": event_id, "tier": rng.choice(["VIP", "GA"]), "quantity": 1}
                return await http.post("/api/v1/bookings", json=body, headers=headers)

            results = await asyncio.gather(*(attempt(i) for i in range(n)))
    codes = Counter(r.status_code for r in results)
    assert set(codes) <= {201, 409}, [r.text for r in results if r.status_code not in (201, 409)][
        :3
    ]
    assert {r.json()["code"] for r in results if r.status_code == 409} <= {"INSUFFICIENT_TICKETS"}
    sold: Counter[str] = Counter()
    for r in results:
        if r.status_code != 201:
            continue
        data = r.json()["data"]
        if "items" in r.request.content.decode():
            assert sorted(b["tier"] for b in data["bookings"]) == ["GA", "VIP"]  # never partial
            for b in data["bookings"]:
                sold[b["tier"]] += b["quantity"]
        else:
            sold[data["tier"]] += data["quantity"]
    assert sold["VIP"] == vip  # VIP is the scarce tier: it sells out exactly
    assert sold["GA"] <= ga
    counts, drift = await counts_and_drift(database_url, event_id)
    assert drift == []
    by_tier = {c.code: c for c in counts}
    assert by_tier["VIP"].confirmed == sold["VIP"] and by_tier["GA"].confirmed == sold["GA"]
    print(f"\n[orders {backend}] requests={n} codes={dict(codes)} sold={dict(sold)}")
